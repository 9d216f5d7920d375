package sdk_test

import (
	"context"
	"log"

	"github.com/medicus-cloud/trust/internal/trustdtest"
)

// imageMeasurement is the simulated measurement that the examples' policy approves.
var imageMeasurement = func() []byte {
	m := make([]byte, 48)
	copy(m, "medicus trust sdk example image")
	return m
}()

// devTrustd starts a trustd on 127.0.0.1 with the simulated TEE, a local keyring holding
// "clinic/records" and "clinic/api-token", and a real audit log, and returns its address.
// A deployment runs cmd/trustd instead.
func devTrustd() (addr string, stop func()) {
	s, err := trustdtest.Start(context.Background(), trustdtest.Options{
		Image: &trustdtest.Image{Name: "clinic-app", Measurement: imageMeasurement,
			Secrets: []string{"clinic/api-token"}, DataKeys: []string{"clinic/records"}},
		DataKeys: []string{"clinic/records"},
		Secrets:  map[string]string{"clinic/api-token": "example-token"},
	})
	if err != nil {
		log.Fatal(err)
	}
	return s.Addr, s.Close
}
