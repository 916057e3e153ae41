package config

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
)

// Secret is a value that is, or may contain, a credential (a database URL
// with its password, a NATS URL with a token, a credentials file): formatting
// it with fmt, slog or encoding/json shows the form Redact gives. Value
// returns the real thing.
type Secret string

// Value returns the secret itself, for the code that uses it.
func (s Secret) Value() string { return string(s) }

// String returns a redacted form: a URL or DSN keeps everything but its
// password, anything else becomes "REDACTED" (and stays empty when empty).
func (s Secret) String() string { return Redact(string(s)) }

// GoString redacts like String, for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue redacts like String, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts like String, for encoding/json and friends.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Format redacts under every verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprint(f, strconv.Quote(s.String()))
	default:
		fmt.Fprint(f, s.String())
	}
}

var (
	// user:password@ in any URL.
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#,]*:)[^@/?#]*@`)
	// Any userinfo in a NATS URL: nats://token@host carries a token.
	natsUserinfo = regexp.MustCompile(`((?:nats|tls|ws|wss)://)[^@/?#,]*@`)
	// password=, sslpassword= and token= query parameters.
	urlQuerySecret = regexp.MustCompile(`(?i)([?&](?:ssl)?password=|[?&]token=)[^&#,]*`)
	// password= in a keyword/value DSN.
	kvPassword = regexp.MustCompile(`(?i)((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// Redact hides the secret parts of a value: passwords in URLs (user:password@,
// password, sslpassword and token parameters, and the whole userinfo of a
// nats://, tls://, ws:// or wss:// URL, which may be a token), the password
// of a keyword/value DSN, or the whole value when it is neither a URL nor a
// DSN ("REDACTED"). A comma-separated list of URLs is redacted URL by URL.
func Redact(v string) string {
	switch {
	case v == "":
		return ""
	case strings.Contains(v, "://"):
		return redactURLs(v)
	case kvPassword.MatchString(v):
		return kvPassword.ReplaceAllString(v, "${1}xxxxx")
	default:
		return "REDACTED"
	}
}

// redactURLs hides the credentials in the URLs within v and leaves the rest.
func redactURLs(v string) string {
	v = natsUserinfo.ReplaceAllString(v, "${1}xxxxx@")
	v = urlPassword.ReplaceAllString(v, "${1}xxxxx@")
	return urlQuerySecret.ReplaceAllString(v, "${1}xxxxx")
}
