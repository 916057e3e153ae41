package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// AddFlags defines on fs one flag for each setting binary b reads. Each
// flag's usage names its environment variable and its default, so --help
// documents every setting; secrets show no default, required settings say
// so. Call Load after fs is parsed.
func AddFlags(fs *pflag.FlagSet, b Binary) {
	for _, s := range For(b) {
		f := fs.VarPF(&flagValue{s: s}, s.Flag, "", usage(s, b))
		if s.kind() == "bool" {
			f.NoOptDefVal = "true"
		}
	}
}

func usage(s Setting, b Binary) string {
	var notes []string
	notes = append(notes, "env "+s.Env)
	switch d := s.Default(); {
	case s.RequiredBy(b):
		notes = append(notes, "required")
	case s.Secret:
		notes = append(notes, "secret")
	case d == "":
		notes = append(notes, `default ""`)
	default:
		notes = append(notes, "default "+d)
	}
	if s.Secret && s.RequiredBy(b) {
		notes = append(notes, "secret")
	}
	return fmt.Sprintf("%s (%s)", s.Help, strings.Join(notes, "; "))
}

// Load returns binary b's configuration: Default, then every variable of
// EnvVars(b) that getenv returns non-empty, then every flag set on fs (nil
// for none), then ValidateFor(b). Errors name the flag and the variable, and
// never print a secret's value.
func Load(b Binary, fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	c := Default()
	var errs []error
	for _, s := range For(b) {
		if v := getenv(s.Env); v != "" {
			if err := s.set(&c, v); err != nil {
				errs = append(errs, s.errorf("from the environment: %w", hideSecret(s, err)))
			}
		}
		if fs == nil {
			continue
		}
		if f := fs.Lookup(s.Flag); f != nil && f.Changed {
			if err := s.set(&c, f.Value.String()); err != nil {
				errs = append(errs, s.errorf("from the flag: %w", hideSecret(s, err)))
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, c.ValidateFor(b))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("load %s configuration: %w", b, err)
	}
	return c, nil
}

func hideSecret(s Setting, err error) error {
	if s.Secret {
		return errors.New("invalid value")
	}
	return err
}

// flagValue holds a flag's text until Load applies it in the right order
// (after the environment). Set checks the syntax at parse time.
type flagValue struct {
	s    Setting
	text string
}

// String returns the text as set. Usage prints DefValue, which AddFlags
// leaves empty, so a secret flag's value never reaches --help.
func (v *flagValue) String() string { return v.text }

func (v *flagValue) Set(text string) error {
	var c Config
	if err := v.s.set(&c, text); err != nil {
		return hideSecret(v.s, err)
	}
	v.text = text
	return nil
}

func (v *flagValue) Type() string { return v.s.kind() }

// IsBoolFlag lets a bool flag be given without a value.
func (v *flagValue) IsBoolFlag() bool { return v.s.kind() == "bool" }
