// goproxy-bench: the smallest useful MITM forward proxy built on github.com/elazarl/goproxy,
// as a peer column in bench/perf.py. It does what egress's data path does at minimum: checks
// Proxy-Authorization (basic), intercepts every CONNECT (AlwaysMitm) with its own CA generated
// at start, and verifies the origin against a given CA. No policy, no logging, no secrets.
//
//	goproxy-bench -listen 127.0.0.1:PORT -user U -password P -upstream-ca ca.pem [-ca-out ca.pem]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// newCA makes a throwaway CA; the leaf certificates goproxy signs with it get the CA's key type.
func newCA() (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "goproxy-bench CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// certCache keeps one signed leaf per host, as mitmproxy and squid do: without it goproxy signs
// a new certificate on every CONNECT and the comparison would measure key generation.
type certCache struct {
	mu    sync.Mutex
	certs map[string]*tls.Certificate
}

func (c *certCache) Fetch(host string, gen func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert, ok := c.certs[host]; ok {
		return cert, nil
	}
	cert, err := gen()
	if err == nil {
		c.certs[host] = cert
	}
	return cert, err
}

// authorized compares the basic credentials in constant time.
func authorized(header, want string) bool {
	got, ok := strings.CutPrefix(header, "Basic ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

var challenge = goproxy.ConnectAction{
	Action: goproxy.ConnectProxyAuthHijack,
	Hijack: func(_ *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
		// goproxy has written the status line; finish the 407 and hang up.
		_, _ = client.Write([]byte("Proxy-Authenticate: Basic realm=\"bench\"\r\n" +
			"Content-Length: 0\r\nConnection: close\r\n\r\n"))
		_ = client.Close()
	},
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	user := flag.String("user", "bot", "proxy user")
	password := flag.String("password", "", "proxy password")
	upstreamCA := flag.String("upstream-ca", "", "PEM file of the CA the origin's certificate chains to")
	caOut := flag.String("ca-out", "", "write the generated MITM CA certificate (PEM) here")
	flag.Parse()

	ca, caPEM := newCA()
	if *caOut != "" {
		if err := os.WriteFile(*caOut, caPEM, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	// AlwaysMitm signs with goproxy.GoproxyCa (read through a pointer at each CONNECT).
	goproxy.GoproxyCa = ca

	pool := x509.NewCertPool()
	if *upstreamCA != "" {
		pem, err := os.ReadFile(*upstreamCA)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			log.Fatalf("cannot load upstream CA %s: %v", *upstreamCA, err)
		}
	}
	want := base64.StdEncoding.EncodeToString([]byte(*user + ":" + *password))

	proxy := goproxy.NewProxyHttpServer()
	proxy.CertStore = &certCache{certs: map[string]*tls.Certificate{}}
	proxy.Tr = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	proxy.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		if !authorized(ctx.Req.Header.Get("Proxy-Authorization"), want) {
			return &challenge, host
		}
		return goproxy.AlwaysMitm(host, ctx)
	})
	// Plain-HTTP requests carry the credentials themselves; requests inside a MITM'd tunnel
	// (scheme https) were authorized at CONNECT.
	proxy.OnRequest().DoFunc(func(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if req.URL.Scheme == "http" && !authorized(req.Header.Get("Proxy-Authorization"), want) {
			resp := goproxy.NewResponse(req, goproxy.ContentTypeText, http.StatusProxyAuthRequired, "auth\n")
			resp.Header.Set("Proxy-Authenticate", `Basic realm="bench"`)
			return req, resp
		}
		return req, nil
	})
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
