// Package fib computes Fibonacci numbers and parses the tutorial's request
// body. It is shared by the gateway (which checks n before publishing) and
// the worker (which checks it again, because foreign clients send anything).
package fib

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
)

// MaxN is the largest n warren computes. fib(100000) has 20,899 digits and
// takes well under a millisecond with fast doubling; the bound keeps one
// call cheap for the worker and its reply small for the broker.
const MaxN = 100_000

// maxBody bounds the request body a worker will look at: the decimal text of
// MaxN with generous room for surrounding white space.
const maxBody = 64

// ErrTooLarge reports n above MaxN.
var ErrTooLarge = fmt.Errorf("fib: n is larger than %d", MaxN)

// Compute returns fib(n) in decimal. It panics if n > MaxN; callers check.
func Compute(n uint32) string {
	if n > MaxN {
		panic(ErrTooLarge)
	}
	if n < 94 {
		return strconv.FormatUint(small(n), 10)
	}
	return big1(n).String()
}

// AppendCompute appends fib(n) in decimal to dst.
func AppendCompute(dst []byte, n uint32) []byte {
	if n < 94 {
		return strconv.AppendUint(dst, small(n), 10)
	}
	return big1(n).Append(dst, 10)
}

// small computes fib(n) for n < 94, which fits in a uint64.
func small(n uint32) uint64 {
	var a, b uint64 = 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

// big1 computes fib(n) by fast doubling:
//
//	fib(2k)   = fib(k) * (2*fib(k+1) - fib(k))
//	fib(2k+1) = fib(k)^2 + fib(k+1)^2
func big1(n uint32) *big.Int {
	a, b := big.NewInt(0), big.NewInt(1) // fib(k), fib(k+1) with k = 0
	t1, t2 := new(big.Int), new(big.Int)
	for i := bits.Len32(n) - 1; i >= 0; i-- {
		// c = a * (2b - a); d = a^2 + b^2
		t1.Lsh(b, 1).Sub(t1, a).Mul(t1, a)
		t2.Mul(a, a)
		b.Mul(b, b).Add(b, t2)
		a, t1 = t1, a
		if n>>uint(i)&1 == 1 {
			// (a, b) = (b, a + b)
			t1.Add(a, b)
			a, b, t1 = b, t1, a
		}
	}
	return a
}

// ParseRequest reads a tutorial request body: the decimal text of n, with
// optional surrounding ASCII white space as Python's int() accepts. It
// rejects anything else with an error that says why, so a worker can send it
// back as data.
func ParseRequest(body []byte) (uint32, error) {
	if len(body) == 0 {
		return 0, errors.New("empty body; want the decimal text of n")
	}
	if len(body) > maxBody {
		return 0, fmt.Errorf("body of %d bytes; want the decimal text of n (at most %d bytes)", len(body), maxBody)
	}
	s := trimSpace(body)
	if len(s) == 0 {
		return 0, errors.New("blank body; want the decimal text of n")
	}
	var n uint64
	for i, c := range s {
		if c < '0' || c > '9' {
			if i == 0 && c == '-' {
				return 0, fmt.Errorf("n = %q is negative", s)
			}
			return 0, fmt.Errorf("body %q is not a decimal number", s)
		}
		n = n*10 + uint64(c-'0')
		if n > MaxN {
			return 0, fmt.Errorf("n = %s: %w", s, ErrTooLarge)
		}
	}
	return uint32(n), nil
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
