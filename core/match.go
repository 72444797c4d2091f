package core

// MatchKey reports whether a publishing with routing key key reaches a
// binding with binding key binding on an exchange of kind, with the
// broker's own semantics:
//
//   - fanout: every key matches;
//   - direct: the keys are equal;
//   - topic: keys are words separated by dots, where a binding's * stands
//     for exactly one word and # for zero or more words, anywhere in the
//     key. Empty words count ("a..b" has three words), and the empty key
//     has no words at all, so "#" matches it and "*" does not.
//
// Any other kind (headers, or an exchange type of a plugin) matches
// nothing: its routing is not decided by keys. MatchKey allocates nothing.
func MatchKey(kind, binding, key string) bool {
	switch kind {
	case "fanout":
		return true
	case "direct":
		return binding == key
	case "topic":
		return matchTopic(binding, key)
	}
	return false
}

// A word position in a key is the byte offset where a word starts; the
// position past the last word is len(key)+1. The empty key has no words:
// its first position is already past the end.
func firstWord(s string) int {
	if s == "" {
		return 1
	}
	return 0
}

// word returns the word of s at position i and the position of the next.
func word(s string, i int) (string, int) {
	for j := i; j < len(s); j++ {
		if s[j] == '.' {
			return s[i:j], j + 1
		}
	}
	return s[i:], len(s) + 1
}

// matchTopic matches like a glob where # is the star and * the single
// character: on a mismatch it backtracks to the last # and lets it take
// one more word, which is linear in practice and at worst the product of
// the two lengths (both at most MaxKeyLen).
func matchTopic(binding, key string) bool {
	bEnd, kEnd := len(binding)+1, len(key)+1
	bi, ki := firstWord(binding), firstWord(key)
	hashB, hashK := -1, -1 // after the last #, and the key where it ends
	for ki != kEnd {
		if bi != bEnd {
			bw, bn := word(binding, bi)
			if bw == "#" {
				hashB, hashK = bn, ki
				bi = bn
				continue
			}
			kw, kn := word(key, ki)
			if bw == "*" || bw == kw {
				bi, ki = bn, kn
				continue
			}
		}
		if hashB < 0 {
			return false
		}
		_, hashK = word(key, hashK)
		bi, ki = hashB, hashK
	}
	for bi != bEnd {
		bw, bn := word(binding, bi)
		if bw != "#" {
			return false
		}
		bi = bn
	}
	return true
}
