package auth

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/warrenrpc/warren/core"
)

// This file decides whether a binding key stays within a principal's
// subscribe scope: whether every routing key the binding can match is
// matched by one of the scope's patterns (core.MatchKey's topic
// semantics). "tenant.x.*" and "tenant.x.#" are within "tenant.x.#";
// "#", "*.x.#" and "tenant.#" are not.
//
// A key is a sequence of words. Two words that appear in neither the
// binding nor the scope behave alike in both, so it is enough to read
// keys over the words the patterns name plus one word that stands for
// every other. Over that finite alphabet each pattern is a small
// automaton (a position per word; * steps over one word, # loops), and
// the question is the inclusion of one automaton's keys in the union of
// the others': a walk over pairs (binding position, set of scope
// positions) that fails when it reaches the binding's end with no scope
// pattern at its end. The union is decided exactly, so keys covered by
// two patterns together ("" and "*.#" cover "#") count as covered.

// maxWalk bounds the walk; a binding too intricate to decide within it is
// refused.
const maxWalk = 1 << 14

var errTooIntricate = errors.New("binding key too intricate to compare with the scope")

// tokens splits a topic pattern into words as the broker does: the empty
// key has none.
func tokens(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, ".")
}

// within reports whether every key binding matches on a topic exchange is
// matched by one of scope.
func within(binding string, scope []string) (bool, error) {
	b := tokens(binding)
	var s [][]string
	alphabet := map[string]struct{}{}
	for _, w := range b {
		alphabet[w] = struct{}{}
	}
	// The positions of the scope patterns, numbered across all of them:
	// pattern i's positions are offs[i] .. offs[i]+len(s[i]) (its end).
	offs := make([]int, 0, len(scope))
	n := 0
	for _, p := range scope {
		ws := tokens(p)
		s = append(s, ws)
		offs = append(offs, n)
		n += len(ws) + 1
		for _, w := range ws {
			alphabet[w] = struct{}{}
		}
	}
	// The words to read: those the patterns name, and one (other) that
	// stands for every word they do not.
	type symbol struct {
		word  string
		other bool
	}
	var syms []symbol
	for w := range alphabet {
		if w != "*" && w != "#" {
			syms = append(syms, symbol{word: w})
		}
	}
	syms = append(syms, symbol{other: true})
	is := func(w string, sym symbol) bool { return w == "*" || !sym.other && w == sym.word }

	// close adds the positions reachable without reading a word: past a #.
	closeSet := func(set []bool) {
		for i, ws := range s {
			for j := range len(ws) {
				if set[offs[i]+j] && ws[j] == "#" {
					set[offs[i]+j+1] = true
				}
			}
		}
	}
	stepSet := func(set []bool, sym symbol) []bool {
		next := make([]bool, n)
		for i, ws := range s {
			for j, w := range ws {
				if !set[offs[i]+j] {
					continue
				}
				switch {
				case w == "#":
					next[offs[i]+j] = true
				case is(w, sym):
					next[offs[i]+j+1] = true
				}
			}
		}
		closeSet(next)
		return next
	}
	accepting := func(set []bool) bool {
		for i, ws := range s {
			if set[offs[i]+len(ws)] {
				return true
			}
		}
		return false
	}
	// The binding's positions reachable from i without reading a word.
	bClose := func(i int) []int {
		out := []int{i}
		for i < len(b) && b[i] == "#" {
			i++
			out = append(out, i)
		}
		return out
	}
	type pair struct {
		b   int
		set []bool
	}
	seen := map[string]bool{}
	key := func(p pair) string {
		buf := binary.AppendUvarint(nil, uint64(p.b))
		for _, v := range p.set {
			if v {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
		}
		return string(buf)
	}
	start := make([]bool, n)
	for i := range s {
		start[offs[i]] = true
	}
	closeSet(start)
	var work []pair
	push := func(p pair) {
		if k := key(p); !seen[k] {
			seen[k] = true
			work = append(work, p)
		}
	}
	for _, bi := range bClose(0) {
		push(pair{bi, start})
	}
	for len(work) > 0 {
		if len(seen) > maxWalk {
			return false, errTooIntricate
		}
		p := work[len(work)-1]
		work = work[:len(work)-1]
		if p.b == len(b) {
			if !accepting(p.set) {
				return false, nil
			}
			continue
		}
		w := b[p.b]
		for _, sym := range syms {
			var nb int
			switch {
			case w == "#":
				nb = p.b
			case is(w, sym):
				nb = p.b + 1
			default:
				continue
			}
			next := stepSet(p.set, sym)
			for _, bi := range bClose(nb) {
				push(pair{bi, next})
			}
		}
	}
	return true, nil
}

// emitAllowed reports whether routing key key is matched by one of scope.
func emitAllowed(key string, scope []string) bool {
	for _, p := range scope {
		if core.MatchKey("topic", p, key) {
			return true
		}
	}
	return false
}
