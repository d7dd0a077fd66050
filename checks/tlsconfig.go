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
	MaxVersion         string `yaml:"max_version"` // TLS10, TLS11, TLS12, TLS13; not below min_version

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
	c.MinVersion, errs = tlsVersion("min_version", o.MinVersion, errs)
	c.MaxVersion, errs = tlsVersion("max_version", o.MaxVersion, errs)
	if c.MinVersion != 0 && c.MaxVersion != 0 && c.MinVersion > c.MaxVersion {
		errs = append(errs, fmt.Errorf("min_version %s is above max_version %s", o.MinVersion, o.MaxVersion))
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

// tlsVersion parses the version option key; "" is 0 (crypto/tls's
// default). An error is appended to errs.
func tlsVersion(key, s string, errs []error) (uint16, []error) {
	if s == "" {
		return 0, errs
	}
	v, ok := tlsVersions[strings.ToUpper(s)]
	if !ok {
		errs = append(errs, fmt.Errorf("%s %q: want TLS10, TLS11, TLS12 or TLS13", key, s))
	}
	return v, errs
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
