package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is what the control plane's TLS needs, as PEM. ECDSA P-256 throughout: key
// generation is instant (RSA would add a noticeable pause to every fresh start) and
// kube-apiserver, client-go, kubectl and Node's TLS all accept it.
type pki struct {
	caCert, caKey           []byte
	servingCert, servingKey []byte
	adminCert, adminKey     []byte
	controllerManagerCert   []byte
	controllerManagerKey    []byte
	serviceAccountKey       []byte // signs service account tokens
	serviceAccountPub       []byte // verifies them
	// The aggregation layer's CA and the client certificate the API server presents to
	// aggregated API servers, which believe its X-Remote-User headers only with it.
	frontProxyCACert                          []byte
	frontProxyClientCert, frontProxyClientKey []byte
	// node holds the certificates of the node's programs by file stem (NAME.crt and
	// NAME.key), when the control plane runs with a node.
	node map[string][2][]byte
}

// nodeIdentity names the node whose programs get certificates.
type nodeIdentity struct {
	name string
	ip   net.IP
}

type certSpec struct {
	commonName   string
	organization []string
	dnsNames     []string
	ips          []net.IP
	usage        x509.ExtKeyUsage
}

// newPKI makes a CA and the certificates signed by it. serviceIP is the first address of
// the service range: in-cluster clients reach the API server as kubernetes.default there.
// With a node, the API server also serves on the node's address, and the node's programs
// get identities of their own.
func newPKI(serviceIP net.IP, node *nodeIdentity) (*pki, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "switchyard-test-ca"},
		NotBefore:             now.Add(-time.Hour), // tolerate a little clock skew
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &pki{caCert: pemBlock("CERTIFICATE", caDER)}
	if p.caKey, err = ecKeyPEM(caKey); err != nil {
		return nil, err
	}

	issueBy := func(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, spec certSpec) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		template := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: spec.commonName, Organization: spec.organization},
			DNSNames:     spec.dnsNames,
			IPAddresses:  spec.ips,
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{spec.usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, template, parent, key.Public(), parentKey)
		if err != nil {
			return nil, nil, err
		}
		keyPEM, err = ecKeyPEM(key)
		return pemBlock("CERTIFICATE", der), keyPEM, err
	}
	issue := func(spec certSpec) (certPEM, keyPEM []byte, err error) { return issueBy(ca, caKey, spec) }

	// A CA of its own, as kubeadm keeps it: were it the cluster CA, any client
	// certificate of the cluster named front-proxy-client could speak for any user.
	fpKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	fpTemplate := *caTemplate
	fpTemplate.SerialNumber = serial()
	fpTemplate.Subject = pkix.Name{CommonName: "switchyard-test-front-proxy-ca"}
	fpDER, err := x509.CreateCertificate(rand.Reader, &fpTemplate, &fpTemplate, fpKey.Public(), fpKey)
	if err != nil {
		return nil, err
	}
	fpCA, err := x509.ParseCertificate(fpDER)
	if err != nil {
		return nil, err
	}
	p.frontProxyCACert = pemBlock("CERTIFICATE", fpDER)
	if p.frontProxyClientCert, p.frontProxyClientKey, err = issueBy(fpCA, fpKey, certSpec{
		commonName: "front-proxy-client",
		usage:      x509.ExtKeyUsageClientAuth,
	}); err != nil {
		return nil, err
	}

	servingIPs := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, serviceIP}
	if node != nil {
		servingIPs = append(servingIPs, node.ip)
	}
	if p.servingCert, p.servingKey, err = issue(certSpec{
		commonName: "kube-apiserver",
		dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		ips:   servingIPs,
		usage: x509.ExtKeyUsageServerAuth,
	}); err != nil {
		return nil, err
	}
	// system:masters is the group that RBAC always authorizes: the tests' admin.
	if p.adminCert, p.adminKey, err = issue(certSpec{
		commonName: "switchyard-admin", organization: []string{"system:masters"},
		usage: x509.ExtKeyUsageClientAuth,
	}); err != nil {
		return nil, err
	}
	// The controller manager gets the identity that the bootstrap RBAC policy expects; with
	// --use-service-account-credentials each controller then acts as its own service
	// account, as in a real cluster, so RBAC is exercised rather than bypassed.
	if p.controllerManagerCert, p.controllerManagerKey, err = issue(certSpec{
		commonName: "system:kube-controller-manager",
		usage:      x509.ExtKeyUsageClientAuth,
	}); err != nil {
		return nil, err
	}

	if node != nil {
		p.node = map[string][2][]byte{}
		// Each identity is the one the bootstrap RBAC policy and the Node authorizer
		// expect, so the node's programs run with a real cluster's permissions.
		specs := map[string]certSpec{
			"kubelet": {commonName: "system:node:" + node.name, organization: []string{"system:nodes"},
				usage: x509.ExtKeyUsageClientAuth},
			"kubelet-serving": {commonName: node.name, dnsNames: []string{node.name}, ips: []net.IP{node.ip},
				usage: x509.ExtKeyUsageServerAuth},
			// The API server's identity towards kubelets (logs, exec, port-forward).
			"apiserver-kubelet-client": {commonName: "kube-apiserver-kubelet-client",
				organization: []string{"system:masters"}, usage: x509.ExtKeyUsageClientAuth},
			"kube-proxy":     {commonName: "system:kube-proxy", usage: x509.ExtKeyUsageClientAuth},
			"kube-scheduler": {commonName: "system:kube-scheduler", usage: x509.ExtKeyUsageClientAuth},
		}
		for stem, spec := range specs {
			cert, key, err := issue(spec)
			if err != nil {
				return nil, err
			}
			p.node[stem] = [2][]byte{cert, key}
		}
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.serviceAccountKey, err = ecKeyPEM(saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	p.serviceAccountPub = pemBlock("PUBLIC KEY", pubDER)
	return p, nil
}

// write stores the PKI under dir with the file names that the command lines use.
func (p *pki) write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt": p.caCert, "ca.key": p.caKey,
		"apiserver.crt": p.servingCert, "apiserver.key": p.servingKey,
		"admin.crt": p.adminCert, "admin.key": p.adminKey,
		"controller-manager.crt": p.controllerManagerCert, "controller-manager.key": p.controllerManagerKey,
		"sa.key": p.serviceAccountKey, "sa.pub": p.serviceAccountPub,
		"front-proxy-ca.crt":     p.frontProxyCACert,
		"front-proxy-client.crt": p.frontProxyClientCert, "front-proxy-client.key": p.frontProxyClientKey,
	}
	for stem, pair := range p.node {
		files[stem+".crt"] = pair[0]
		files[stem+".key"] = pair[1]
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func ecKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
