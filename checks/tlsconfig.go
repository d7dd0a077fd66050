package checks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLSOptions are the TLS settings shared by the tls, http and ldap checks.
// Names follow Prometheus' tls_config.
type TLSOptions struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	MinVersion         string `yaml:"min_version"` // TLS10, TLS11, TLS12, TLS13

	config *tls.Config // built by Validate
}

var tlsVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10, "TLS11": tls.VersionTLS11,
	"TLS12": tls.VersionTLS12, "TLS13": tls.VersionTLS13,
}

// Validate loads the CA and client certificate files and builds the
// tls.Config once, so a bad file is a config error, not a check failure.
func (o *TLSOptions) Validate() error {
	c := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify, ServerName: o.ServerName}
	var errs []error
	if o.MinVersion != "" {
		v, ok := tlsVersions[strings.ToUpper(o.MinVersion)]
		if !ok {
			errs = append(errs, fmt.Errorf("min_version %q: want TLS10, TLS11, TLS12 or TLS13", o.MinVersion))
		}
		c.MinVersion = v
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ca_file %s: no PEM certificate found", o.CAFile))
			}
			c.RootCAs = pool
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file go together"))
	} else if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("client certificate: %w", err))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	o.config = c
	return nil
}

// Config returns a tls.Config for host (used as SNI and for verification
// unless server_name is set). Validate must have succeeded.
func (o *TLSOptions) Config(host string) *tls.Config {
	base := o.config
	if base == nil {
		base = &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify, ServerName: o.ServerName}
	}
	c := base.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}
