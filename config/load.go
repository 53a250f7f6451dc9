package config

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// Loaded is a configuration that passed every phase, with what compilation made of it.
type Loaded struct {
	*Config
	// Path is the file it came from ("" when parsed from memory).
	Path string
	// Source is the content it was parsed from (nil when parsed from memory).
	Source []byte
	// RuleSet is Config.Rules compiled.
	RuleSet *rules.Set
	// Identity is identity_headers compiled: lower-case header name → what it carries.
	Identity map[string]token.Attribute
	// RolesClaims are each issuer's roles_claims compiled, in issuer order.
	RolesClaims [][]token.ClaimPath
	// ServerTLS is server.tls read once: the listeners' certificate and, for mutual TLS, the
	// client CAs; nil when TLS is off.
	ServerTLS *tls.Config
	// IssuerFiles are the files of each issuer, read and parsed once, in issuer order.
	IssuerFiles []IssuerFiles
	// Warnings are findings that do not stop the configuration from loading.
	Warnings []string
}

// IssuerFiles is what loading read of the files an issuer names. The key-set caches are built
// from it (jwks.Options.StaticSet, the ClientOptions of jwks.NewClient): nothing reads the files again.
type IssuerFiles struct {
	// JWKS is the jwks_file parsed for the issuer's algorithms (a JWK Set holding at least one
	// usable key); nil without a jwks_file.
	JWKS *jwks.Set
	// JWKSDigest is the SHA-256 (hex) of the jwks_file; "" without one.
	JWKSDigest string
	// Roots are the system's certificates plus those of the ca_file; nil without a ca_file.
	Roots *x509.CertPool
	// CADigest is the SHA-256 (hex) of the ca_file; "" without one.
	CADigest string
	// ClientCert is the client_cert_file and client_key_file as a key pair; nil without them.
	ClientCert *tls.Certificate
	// ClientCertDigest is the SHA-256 (hex) of the two files; "" without them.
	ClientCertDigest string
	// Proxy is the proxy_url parsed; nil without one.
	Proxy *url.URL

	// IntrospectionSecret is the content of introspection.client_secret_file; "" without one.
	IntrospectionSecret Secret
}

// Load reads the configuration file at path and runs every phase on it (see Parse).
func Load(path string) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	l, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	l.Path, l.Source = path, data
	return l, nil
}

// Parse is the one entry point: strict decode and normalisation (relative file paths are
// resolved against baseDir, the configuration file's directory), defaults, validation, and
// compilation (rules; jwks_file and ca_file read and parsed). It makes no network call. Every
// error names its field path (and a problem of reading the file, its line); all are reported
// together, decoding problems first, but for the content of the issuers' files, which is read
// only once everything else is valid.
func Parse(data []byte, baseDir string) (*Loaded, error) {
	var cfg Config
	w, derrs, failed, err := decodeAll(data, &cfg)
	if err != nil {
		return nil, &Error{Problems: splitJoined(err)}
	}
	// The later checks run on what could be read, so that one pass reports every problem;
	// those at a field that could not be read are left to its decoding problem.
	var errs []string
	for _, e := range derrs {
		errs = append(errs, e.Error())
	}
	cfg.applyDefaults(w)
	later := cfg.normalise(baseDir)
	verrs, warns := cfg.validate()
	later = append(later, verrs...)
	identity, rolesClaims := cfg.compileClaims(&later)
	set, err := rules.Compile(cfg.Rules)
	if err != nil {
		later = append(later, splitJoined(err)...)
	}
	errs = append(errs, covered(later, failed)...)
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	files, errs := cfg.readIssuerFiles()
	serverTLS, tlsErrs := cfg.Server.TLS.read()
	if errs = append(errs, tlsErrs...); len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	warns = append(warns, set.Warnings()...)
	return &Loaded{Config: &cfg, RuleSet: set, Identity: identity, RolesClaims: rolesClaims, ServerTLS: serverTLS, IssuerFiles: files, Warnings: warns}, nil
}

// readIssuerFiles reads each issuer's jwks_file and ca_file and parses them as the key-set
// cache will: a jwks_file must be a JWK Set with a key usable with the issuer's algorithms,
// a ca_file must hold a PEM certificate.
func (c *Config) readIssuerFiles() ([]IssuerFiles, []string) {
	var errs []string
	files := make([]IssuerFiles, len(c.Issuers))
	for i, is := range c.Issuers {
		p := fmt.Sprintf("issuers[%d]", i)
		if is.JWKSFile != "" {
			doc, err := readJWKSFile(is.JWKSFile)
			var set *jwks.Set
			switch {
			case errors.Is(err, jwks.ErrTooLarge):
				errs = append(errs, fmt.Sprintf("%s.jwks_file: %q is larger than %d bytes; keep only the issuer's public signing keys in it", p, is.JWKSFile, jwks.DefaultMaxResponseBytes))
			case err != nil:
				errs = append(errs, fmt.Sprintf("%s.jwks_file: cannot read %q: %v", p, is.JWKSFile, unwrapPath(err)))
			default:
				if set, err = jwks.ParseSet(doc, token.KeyAlgorithms(is.Algorithms)); err != nil {
					todo := `write the JWK Set the issuer publishes at its jwks_uri ({"keys": [...]}, RFC 7517 §5)`
					if errors.Is(err, jwks.ErrNoUsableKeys) {
						todo = "put the issuer's public signing keys in it, or allow their algorithm in " + p + ".algorithms"
					}
					errs = append(errs, fmt.Sprintf("%s.jwks_file: %q: %v; %s", p, is.JWKSFile, err, todo))
				} else {
					files[i].JWKS, files[i].JWKSDigest = set, digest(doc)
				}
			}
		}
		if is.ProxyURL != "" {
			files[i].Proxy, _ = url.Parse(is.ProxyURL) // validated
		}
		if is.ClientCertFile != "" {
			cert, sum, err := readKeyPair(is.ClientCertFile, is.ClientKeyFile)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: client_cert_file %q and client_key_file %q are not a usable key pair: %v; write the client certificate (chain) the identity provider trusts and its private key as PEM", p, is.ClientCertFile, is.ClientKeyFile, err))
			} else {
				files[i].ClientCert, files[i].ClientCertDigest = cert, sum
			}
		}
		if in := is.Introspection; in != nil && in.ClientSecretFile != "" {
			secret, problem := readSecret(p+".introspection.client_secret_file", in.ClientSecretFile)
			if problem != "" {
				errs = append(errs, problem)
			}
			files[i].IntrospectionSecret = secret
		}
		if is.CAFile != "" {
			pem, err := os.ReadFile(is.CAFile)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s.ca_file: cannot read %q: %v", p, is.CAFile, unwrapPath(err)))
				continue
			}
			roots, err := jwks.Roots(pem)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s.ca_file: %q %v; write the CA certificates as PEM (\"-----BEGIN CERTIFICATE-----\" blocks)", p, is.CAFile, err))
				continue
			}
			files[i].Roots, files[i].CADigest = roots, digest(pem)
		}
	}
	return files, errs
}

// read loads the listeners' key pair and client CAs as the listeners will use them; nil when
// TLS is off.
func (t TLS) read() (*tls.Config, []string) {
	if !t.Enabled() {
		return nil, nil
	}
	var errs []string
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		errs = append(errs, fmt.Sprintf("server.tls: cert_file %q and key_file %q are not a usable key pair: %v; write the certificate chain and its private key as PEM", t.CertFile, t.KeyFile, unwrapPath(err)))
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("server.tls.client_ca_file: cannot read %q: %v", t.ClientCAFile, unwrapPath(err)))
		case !pool.AppendCertsFromPEM(pem):
			errs = append(errs, fmt.Sprintf("server.tls.client_ca_file: %q holds no PEM certificate; write the CA certificates that sign client certificates as PEM (\"-----BEGIN CERTIFICATE-----\" blocks)", t.ClientCAFile))
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// readKeyPair reads a certificate and its private key, checking that they belong together,
// and the digest of both files.
func readKeyPair(certFile, keyFile string) (*tls.Certificate, string, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, "", unwrapPath(err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, "", unwrapPath(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", err
	}
	return &cert, digest(append(append([]byte{}, certPEM...), keyPEM...)), nil
}

// readJWKSFile reads a jwks_file, held to the bound of a fetched key set.
func readJWKSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jwks.ReadDocument(f, jwks.DefaultMaxResponseBytes)
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// unwrapPath drops the operation and path of an *os.PathError, which the message names already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Error lists every problem found in a configuration.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return fmt.Sprintf("config: %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

func splitJoined(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []string{err.Error()}
}
