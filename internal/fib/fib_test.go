package fib

import (
	"bytes"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// naive computes fib(n) by iteration, the obviously correct way.
func naive(n uint32) *big.Int {
	a, b := big.NewInt(0), big.NewInt(1)
	for range n {
		a.Add(a, b)
		a, b = b, a
	}
	return a
}

func TestComputeMatchesIteration(t *testing.T) {
	t.Parallel()
	for n := uint32(0); n <= 1500; n++ {
		if got, want := Compute(n), naive(n).String(); got != want {
			t.Fatalf("Compute(%d) = %s, want %s", n, got, want)
		}
	}
	for _, n := range []uint32{4093, 4096, 12345, MaxN} {
		if got, want := Compute(n), naive(n).String(); got != want {
			t.Fatalf("Compute(%d) differs from iteration", n)
		}
	}
}

func TestComputeKnownValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    uint32
		want string
	}{
		{0, "0"}, {1, "1"}, {2, "1"}, {4, "3"}, {30, "832040"},
		{93, "12200160415121876738"},
		{94, "19740274219868223167"},
	}
	for _, tt := range tests {
		if got := Compute(tt.n); got != tt.want {
			t.Errorf("Compute(%d) = %s, want %s", tt.n, got, tt.want)
		}
		if got := string(AppendCompute([]byte("x"), tt.n)); got != "x"+tt.want {
			t.Errorf("AppendCompute(%d) = %s, want x%s", tt.n, got, tt.want)
		}
	}
	if got := len(Compute(1000)); got != 209 {
		t.Errorf("len(fib(1000)) = %d digits, want 209", got)
	}
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    []byte
		want    uint32
		wantErr string
	}{
		{name: "plain", body: []byte("30"), want: 30},
		{name: "zero", body: []byte("0"), want: 0},
		{name: "white space", body: []byte(" 30\n"), want: 30},
		{name: "max", body: []byte("100000"), want: MaxN},
		{name: "leading zeros", body: []byte("007"), want: 7},
		{name: "empty", body: nil, wantErr: "empty body"},
		{name: "blank", body: []byte("  "), wantErr: "blank body"},
		{name: "letters", body: []byte("abc"), wantErr: "not a decimal number"},
		{name: "negative", body: []byte("-5"), wantErr: "negative"},
		{name: "plus sign", body: []byte("+5"), wantErr: "not a decimal number"},
		{name: "float", body: []byte("3.5"), wantErr: "not a decimal number"},
		{name: "too large", body: []byte("100001"), wantErr: "larger than"},
		{name: "overflow", body: []byte("99999999999999999999999"), wantErr: "larger than"},
		{name: "1 MB", body: bytes.Repeat([]byte("1"), 1<<20), wantErr: "1048576 bytes"},
		{name: "invalid utf-8", body: []byte{0xff, 0xfe}, wantErr: "not a decimal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRequest = %d, %v; want %d, nil", got, err, tt.want)
			}
		})
	}
	if _, err := ParseRequest([]byte("100001")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: got %v, want ErrTooLarge", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"30", "", "abc", "-5", " 7\n", "100001", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseRequest(body)
		if err != nil {
			return
		}
		if n > MaxN {
			t.Fatalf("ParseRequest(%q) = %d beyond MaxN", body, n)
		}
		_ = Compute(n)
	})
}

func BenchmarkComputeMax(b *testing.B) {
	for b.Loop() {
		_ = AppendCompute(nil, MaxN)
	}
}
