package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The flags several commands share are parsed here, once, by value types whose Set checks
// what was typed: a value a command would refuse later is refused while the command line is
// read, by every command alike, with a message naming the flag and the text as typed
// (`--ttl "-1h": ...`), never the configuration field the value would have gone to.

// flagError rewrites cobra's `invalid argument "x" for "--ttl" flag: ...` as
// `--ttl "x": ...`, the form of every other command line error.
func flagError(_ *cobra.Command, err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		name := "--" + ive.GetFlag().Name
		return &exitError{2, fmt.Errorf("%s %q: %v", name, ive.GetValue(), errors.Unwrap(ive))}
	}
	return &exitError{2, err}
}

// choiceValue is a string flag that takes one of a fixed list, compared case-insensitively.
type choiceValue struct {
	dst     *string
	choices []string
}

func (v *choiceValue) String() string { return *v.dst }
func (v *choiceValue) Type() string   { return "string" }
func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if strings.EqualFold(s, c) {
			*v.dst = c
			return nil
		}
	}
	return fmt.Errorf("not one of %s", strings.Join(v.choices, ", "))
}

// logLevelFlag adds --log-level: debug, info, warn or error.
func logLevelFlag(fs *pflag.FlagSet, dst *string) {
	*dst = "info"
	fs.Var(&choiceValue{dst: dst, choices: []string{"debug", "info", "warn", "error"}}, "log-level", "log level: debug, info, warn, error")
}

// logFormatFlag adds --log-format: text or json.
func logFormatFlag(fs *pflag.FlagSet, dst *string) {
	*dst = "text"
	fs.Var(&choiceValue{dst: dst, choices: []string{"text", "json"}}, "log-format", "log format: text or json")
}

// parseLogLevel turns a --log-level value into a slog level.
func parseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: not one of debug, info, warn, error", s)
	}
	return level, nil
}

// durationValue is a duration flag that must be positive; why says what a value of zero or
// less would do.
type durationValue struct {
	dst     *time.Duration
	example string
	why     string
}

func (v *durationValue) String() string { return v.dst.String() }
func (v *durationValue) Type() string   { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration; write it with a unit, e.g. %s", v.example)
	}
	if d <= 0 {
		return fmt.Errorf("must be positive: %s (e.g. %s)", v.why, v.example)
	}
	*v.dst = d
	return nil
}

// positiveDurationFlag adds a duration flag that refuses zero and negative values.
func positiveDurationFlag(fs *pflag.FlagSet, dst *time.Duration, name string, def time.Duration, example, why, usage string) {
	*dst = def
	fs.Var(&durationValue{dst: dst, example: example, why: why}, name, usage)
}

// addrValue is a listen address flag: host:port with a numeric port (0 = a free port), or ""
// (off) where the listener is optional.
type addrValue struct {
	dst      *string
	optional bool
}

func (v *addrValue) String() string { return *v.dst }
func (v *addrValue) Type() string   { return "host:port" }
func (v *addrValue) Set(s string) error {
	if s == "" && v.optional {
		*v.dst = s
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		off := ""
		if v.optional {
			off = `, or "" to turn it off`
		}
		return fmt.Errorf("not host:port; write e.g. 127.0.0.1:9191 (127.0.0.1:0 takes a free port%s)", off)
	}
	*v.dst = s
	return nil
}

// addrFlag adds a listen address flag.
func addrFlag(fs *pflag.FlagSet, dst *string, name, def string, optional bool, usage string) {
	*dst = def
	fs.Var(&addrValue{dst: dst, optional: optional}, name, usage)
}

// distinctAddrs refuses two address flags naming the same address (a port 0 is never shared):
// the second listener could not open.
func distinctAddrs(cmd *cobra.Command, names ...string) error {
	seen := map[string]string{}
	for _, name := range names {
		f := cmd.Flags().Lookup(name)
		a := f.Value.String()
		if _, port, err := net.SplitHostPort(a); a == "" || err != nil || port == "0" {
			continue
		}
		if other, dup := seen[a]; dup {
			return &exitError{2, fmt.Errorf("--%s %q: already used by --%s; give each listener its own port", name, a, other)}
		}
		seen[a] = name
	}
	return nil
}
