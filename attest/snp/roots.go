package snp

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify/trust"
)

// Roots are the trust anchors of one product line: AMD's root key and the two intermediates it
// certifies, the ASK for VCEKs and the ASVK for VLEKs.
type Roots struct {
	Product string
	ARK     *x509.Certificate
	// ASK certifies VCEKs; nil means VCEK-signed reports of this product are not accepted.
	ASK *x509.Certificate
	// ASVK certifies VLEKs; nil means VLEK-signed reports of this product are not accepted.
	ASVK *x509.Certificate
}

// RootsFromKDSChains builds the roots of product from AMD KDS cert_chain bodies (two PEM
// certificates, intermediate then ARK): the /vcek/v1/{product}/cert_chain body and the
// /vlek/v1/{product}/cert_chain body. Either may be nil, not both. Both must carry the same ARK;
// the ARK must be self-signed and sign the intermediates.
func RootsFromKDSChains(product string, vcekChain, vlekChain []byte) (*Roots, error) {
	r := &Roots{Product: product}
	for _, c := range []struct {
		name  string
		chain []byte
		dst   **x509.Certificate
	}{{"ASK", vcekChain, &r.ASK}, {"ASVK", vlekChain, &r.ASVK}} {
		if c.chain == nil {
			continue
		}
		// Some published bundles end in extra blank lines; the two certificates are what count.
		icaDER, arkDER, err := kds.ParseProductCertChain(bytes.TrimSpace(c.chain))
		if err != nil {
			return nil, fmt.Errorf("%s %s chain: %v", product, c.name, err)
		}
		ica, err := x509.ParseCertificate(icaDER)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", product, c.name, err)
		}
		ark, err := x509.ParseCertificate(arkDER)
		if err != nil {
			return nil, fmt.Errorf("%s ARK: %v", product, err)
		}
		if r.ARK != nil && !bytes.Equal(r.ARK.Raw, ark.Raw) {
			return nil, fmt.Errorf("%s: the VCEK and VLEK chains carry different ARKs", product)
		}
		r.ARK = ark
		*c.dst = ica
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// check makes sure the roots hang together: a self-signed ARK that signs each intermediate.
func (r *Roots) check() error {
	if r == nil || r.ARK == nil {
		return fmt.Errorf("roots without an ARK")
	}
	if r.ASK == nil && r.ASVK == nil {
		return fmt.Errorf("%s roots without ASK or ASVK", r.Product)
	}
	if err := r.ARK.CheckSignatureFrom(r.ARK); err != nil {
		return fmt.Errorf("%s ARK is not self-signed: %v", r.Product, err)
	}
	for name, ica := range map[string]*x509.Certificate{"ASK": r.ASK, "ASVK": r.ASVK} {
		if ica == nil {
			continue
		}
		if err := ica.CheckSignatureFrom(r.ARK); err != nil {
			return fmt.Errorf("%s %s is not signed by the ARK: %v", r.Product, name, err)
		}
	}
	return nil
}

// AMDRoots returns AMD's published roots for Milan, Genoa and Turin, VCEK and VLEK alike, from the
// cert_chain files go-sev-guest embeds (downloaded from kdsintf.amd.com). The library's own
// default roots carry no ASVK; these do, so VLEK-signed reports (AWS and others) verify.
func AMDRoots() (map[string]*Roots, error) {
	out := map[string]*Roots{}
	for _, p := range []struct {
		product    string
		vcek, vlek []byte
	}{
		{Milan, trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
		{Genoa, trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
		{Turin, trust.AskArkTurinVcekBytes, trust.AskArkTurinVlekBytes},
	} {
		r, err := RootsFromKDSChains(p.product, p.vcek, p.vlek)
		if err != nil {
			return nil, fmt.Errorf("embedded AMD roots: %v", err)
		}
		out[p.product] = r
	}
	return out, nil
}
