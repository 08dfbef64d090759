package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// applyConfig fills every flag the user did not set on the command line from the
// environment (BOOTYARD_<FLAG_NAME>) and then from the YAML file (key = flag name):
// flags beat env, env beats the file.
func applyConfig(flags *pflag.FlagSet, file string) error {
	var fromFile map[string]any
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &fromFile); err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
		for k := range fromFile {
			if flags.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown setting %q (see bootyard serve --help)", file, k)
			}
		}
	}
	var firstErr error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := setFlag(f, v); err != nil {
				firstErr = fmt.Errorf("%s: %w", envName(f.Name), err)
			}
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			var vals []string
			switch t := v.(type) {
			case []any:
				for _, e := range t {
					vals = append(vals, fmt.Sprint(e))
				}
			default:
				vals = []string{fmt.Sprint(t)}
			}
			for _, s := range vals {
				if err := f.Value.Set(s); err != nil {
					firstErr = fmt.Errorf("config %s: %w", f.Name, err)
					return
				}
			}
		}
	})
	return firstErr
}

func setFlag(f *pflag.Flag, v string) error {
	if f.Value.Type() == "stringSlice" || f.Value.Type() == "stringArray" {
		for _, s := range strings.Split(v, ",") {
			if err := f.Value.Set(strings.TrimSpace(s)); err != nil {
				return err
			}
		}
		return nil
	}
	return f.Value.Set(v)
}

// envName is the variable that configures a flag: --dhcp-range → BOOTYARD_DHCP_RANGE.
func envName(flag string) string {
	return "BOOTYARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
