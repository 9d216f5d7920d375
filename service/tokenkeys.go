package service

import (
	"crypto/x509"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/token"
)

// TokenKeys lists the token issuer's public keys for GetTokenKeys.
func TokenKeys(i *token.Issuer) (*pb.GetTokenKeysResponse, error) {
	resp := &pb.GetTokenKeysResponse{}
	for kid, pub := range i.PublicKeys() {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		resp.Keys = append(resp.Keys, &pb.TokenKey{Kid: kid, PublicKey: der, Algorithm: "ES256"})
	}
	return resp, nil
}
