package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	gosort "sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/spikeline/spikeline/device"
)

// configFlag registers --config on fs. After parsing, the returned
// function applies the settings of the TOML file named by --config to every
// flag not given on the command line (the command line wins). Keys are
// flag names; a table prefixes its keys ("[nats] user = ..." is
// --nats-user); arrays become comma-separated lists. An unknown key or a
// bad value is a usage error naming the file and the key. The file is read
// with a cap of device.MaxConfigBytes.
func configFlag(fs *flag.FlagSet) func() error {
	path := fs.String("config", "", "TOML file of settings: keys are flag names (e.g. device = \"serial:/dev/ttyACM0\", channels = 64); flags on the command line win")
	return func() error {
		if *path == "" {
			return nil
		}
		b, err := device.ReadFileLimit(*path, device.MaxConfigBytes)
		if err != nil {
			return usageErrorf("--config: %v", err)
		}
		settings, err := parseConfig(b)
		if err != nil {
			return usageErrorf("--config %s: %v", *path, err)
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		keys := make([]string, 0, len(settings))
		for k := range settings {
			keys = append(keys, k)
		}
		gosort.Strings(keys)
		for _, k := range keys {
			f := fs.Lookup(k)
			switch {
			case f == nil || k == "config":
				return usageErrorf("--config %s: unknown setting %q (keys are the flags of 'spikeline %s -h')", *path, k, strings.TrimPrefix(fs.Name(), "spikeline "))
			case given[k]:
				continue
			}
			if err := fs.Set(k, settings[k]); err != nil {
				return usageErrorf("--config %s: %s = %q: %v", *path, k, settings[k], err)
			}
		}
		return nil
	}
}

// parseConfig decodes a TOML configuration into flag settings (name →
// value as it would be given on the command line); errors give the line.
func parseConfig(b []byte) (map[string]string, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(b), &doc); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return nil, err
	}
	settings := map[string]string{}
	if err := flattenConfig("", doc, settings); err != nil {
		return nil, err
	}
	return settings, nil
}

// flattenConfig turns a decoded TOML document into flag settings.
func flattenConfig(prefix string, doc map[string]any, out map[string]string) error {
	for k, v := range doc {
		name := k
		if prefix != "" {
			name = prefix + "-" + k
		}
		switch v := v.(type) {
		case map[string]any:
			if err := flattenConfig(name, v, out); err != nil {
				return err
			}
		case []any:
			parts := make([]string, len(v))
			for i, e := range v {
				s, err := configScalar(e)
				if err != nil {
					return fmt.Errorf("%s[%d]: %v", name, i, err)
				}
				parts[i] = s
			}
			out[name] = strings.Join(parts, ",")
		default:
			s, err := configScalar(v)
			if err != nil {
				return fmt.Errorf("%s: %v", name, err)
			}
			out[name] = s
		}
	}
	return nil
}

func configScalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	default:
		return "", fmt.Errorf("a %T is not a flag value (use a string, number or boolean)", v)
	}
}

// logFlags registers --log-format and --log-level on fs; the returned
// function builds the logger (on w) after parsing.
func logFlags(fs *flag.FlagSet) func(w io.Writer) (*slog.Logger, error) {
	format := fs.String("log-format", "text", "log format on stderr: text or json")
	level := fs.String("log-level", "info", "least severe log level shown: debug, info, warn or error")
	return func(w io.Writer) (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return nil, usageErrorf("--log-level %q: want debug, info, warn or error", *level)
		}
		opts := &slog.HandlerOptions{Level: l}
		switch *format {
		case "text":
			return slog.New(slog.NewTextHandler(w, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(w, opts)), nil
		}
		return nil, usageErrorf("--log-format %q: want text or json", *format)
	}
}
