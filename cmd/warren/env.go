package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix starts the environment variable of every flag: --amqp-url is
// also WARREN_AMQP_URL.
const envPrefix = "WARREN_"

// envName is the environment variable of the flag named name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// bindEnv makes the environment the default of every flag of root and its
// subcommands: a flag whose WARREN_<FLAG> is set and not empty starts with
// that value, and a flag given on the command line replaces it. Help shows
// the defaults with URL passwords redacted. A value the flag rejects is
// reported, as a usage error, only by the command it belongs to: the
// returned map holds it. The commands with flags get the annotation
// envAnnotation, so that their help ends with envHelp.
func bindEnv(root *cobra.Command, lookup func(string) (string, bool)) map[*cobra.Command]error {
	errs := map[*cobra.Command]error{}
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == "version" {
				return
			}
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[envAnnotation] = "true"
			name := envName(f.Name)
			if v, ok := lookup(name); ok && v != "" {
				if err := f.Value.Set(v); err != nil {
					if errs[c] == nil {
						errs[c] = usagef("$%s: %v", name, err)
					}
				} else {
					f.DefValue = f.Value.String()
					f.Usage += "; set by $" + name
				}
			}
			f.DefValue = redact(f.DefValue)
		})
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
	return errs
}

// redact hides the passwords of the URLs in a flag value (one URL or
// several, comma-separated): amqp://guest:xxxxx@host/. A value that has an
// "@" but does not parse as URLs is hidden whole.
func redact(value string) string {
	if !strings.Contains(value, "@") {
		return value
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			return "xxxxx"
		}
		if _, ok := u.User.Password(); ok {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// envAnnotation marks the commands whose help ends with envHelp.
const envAnnotation = "warren-env"

// envHelp is the line every command's help ends with when it has flags.
func envHelp() string {
	return fmt.Sprintf("Every flag can also be set in the environment as %s<FLAG>, upper case with\n"+
		"dashes as underscores (--amqp-url: %s); a flag on the command line wins.", envPrefix, envName("amqp-url"))
}
