package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version describes the build from its embedded build information: the
// module version, the VCS revision (and whether the tree had local
// changes) and the Go version, as "warren version v1.2.3, revision
// 0123456789ab, go1.26.8 linux/amd64". A binary built without VCS stamping
// (-buildvcs=false, or outside a repository) says "revision unknown".
func version() string {
	return formatVersion(debug.ReadBuildInfo())
}

func formatVersion(bi *debug.BuildInfo, ok bool) string {
	mod, rev, modified, goVersion := "(devel)", "unknown", false, runtime.Version()
	if ok {
		if bi.Main.Version != "" {
			mod = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("warren version %s, revision %s, %s %s/%s", mod, rev, goVersion, runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print warren's version, VCS revision and Go version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version())
			return err
		},
	}
}
