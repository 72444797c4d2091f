package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/logsvc"
)

// historyFlags configure LogService's log history (--log-history).
type historyFlags struct {
	on         bool
	maxAge     time.Duration
	maxBytes   byteSize
	segment    byteSize
	directKeys []string
}

func (f *historyFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.maxBytes, f.segment = logsvc.DefaultHistoryMaxBytes, logsvc.DefaultHistorySegmentBytes
	fs.BoolVar(&f.on, "log-history", false, "keep each log exchange's messages in a RabbitMQ stream (<exchange>.history), from which SubscribeLogs may start in the past and resume from an offset")
	fs.DurationVar(&f.maxAge, "log-history-max-age", logsvc.DefaultHistoryMaxAge, "how long the log history keeps messages (the stream's x-max-age, to the second); 0: no limit by age")
	fs.Var(&f.maxBytes, "log-history-max-bytes", "the most the log history of one exchange holds (x-max-length-bytes): bytes, or with a unit (kB, MB, GB, KiB, MiB, GiB); 0: no limit by size")
	fs.Var(&f.segment, "log-history-segment-bytes", "the size of the log history's segment files, the unit in which retention deletes (x-stream-max-segment-size-bytes)")
	fs.StringSliceVar(&f.directKeys, "log-history-direct-keys", logsvc.DefaultHistoryDirectKeys, "keys the direct exchange's history is bound with from the start (a key a subscription asks for is bound when it first does)")
}

// config is the logsvc.History of the flags.
func (f *historyFlags) config() (logsvc.History, error) {
	h := logsvc.History{Enabled: f.on, MaxAge: f.maxAge, MaxBytes: int64(f.maxBytes), SegmentBytes: int64(f.segment), DirectKeys: f.directKeys}
	if !f.on {
		return h, nil
	}
	switch {
	case f.maxAge < 0:
		return h, usagef("--log-history-max-age %v is negative", f.maxAge)
	case f.maxAge == 0:
		h.MaxAge = -1 // no limit
	case f.maxAge < time.Second:
		return h, usagef("--log-history-max-age %v is less than a second, the stream's unit", f.maxAge)
	}
	if f.maxBytes == 0 {
		h.MaxBytes = -1
	}
	if f.segment == 0 {
		return h, usagef("--log-history-segment-bytes must be more than 0")
	}
	if len(f.directKeys) == 0 {
		h.DirectKeys = []string{} // none, rather than the defaults
	} else if _, err := core.BindingKeys("direct", f.directKeys, len(f.directKeys)); err != nil {
		return h, usagef("--log-history-direct-keys: %v", err)
	}
	return h, nil
}

// byteSize is a size flag: a count of bytes, or a number with a unit.
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (b *byteSize) Set(s string) error {
	num, unit := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, unit = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: want a count of bytes, or one with a unit such as 64MiB or 1GB", s)
	}
	if n > (1<<63-1)/unit {
		return fmt.Errorf("%q is too large", s)
	}
	*b = byteSize(n * unit)
	return nil
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range byteUnits[:4] {
		if n >= u.n && n%u.n == 0 && (n/u.n < 1024 || u.suffix == "TiB") {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (*byteSize) Type() string { return "size" }
