#!/usr/bin/env bash
# buf breaking (the FILE rules of buf.yaml): proto/ as it is in the working
# tree, uncommitted edits included, against the commit where this branch
# left main, i.e. `git merge-base HEAD main`. Against main's tip instead, a
# branch that main has moved past would be blamed for main's own additions
# (a field main added "deleted" here). On main itself the base is HEAD, so
# only uncommitted edits are checked.
#
# main is the local branch, or origin/main in a clone that has only the
# remote-tracking one. BREAKING_AGAINST=<commit or ref> names the base
# instead. With no base to compare with (no main at all, or a shallow clone
# whose history does not reach the fork point) it says so and passes: a
# missing baseline is not a breaking change. make lint runs it.
set -euo pipefail

if ! top=$(git rev-parse --show-toplevel 2>/dev/null); then
	echo "buf breaking: SKIPPED: not in a git checkout, no main to compare with"
	exit 0
fi
cd "$top"

skip() {
	echo "buf breaking: SKIPPED: $*; set BREAKING_AGAINST=<commit> to compare with one"
	exit 0
}

against=${BREAKING_AGAINST:-}
if [[ -z $against ]]; then
	main=
	for ref in refs/heads/main refs/remotes/origin/main; do
		if git rev-parse -q --verify "$ref^{commit}" >/dev/null; then
			main=$ref
			break
		fi
	done
	[[ -n $main ]] || skip "no main branch here (neither main nor origin/main)"
	against=$(git merge-base HEAD "$main") ||
		skip "HEAD and ${main#refs/*/} share no commit in this clone (shallow?)"
fi
commit=$(git rev-parse -q --verify "$against^{commit}") ||
	{ echo "buf breaking: BREAKING_AGAINST=$against is not a commit here"; exit 1; }

echo "buf breaking: proto/ (warren's API; not the example's) against $(git log -1 --format='%h (%s)' "$commit")"
exec buf breaking proto --against ".git#ref=$commit,subdir=proto"
