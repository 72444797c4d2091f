#!/usr/bin/env bash
# Fails when a tracked file is binary or larger than 1 MiB: build outputs,
# archives and data sets do not belong in the tree. Binary is git's own
# verdict (a NUL byte among the first 8,000 bytes), for the index and the
# working tree alike, so it agrees with what `git diff` shows as "Binary
# files differ". make lint runs it.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

limit=$((1024 * 1024))
bad=()

# One line per tracked file: "i/<eol> w/<eol> attr/<...>\t<path>"; -text
# marks binary content.
while IFS= read -r -d '' line; do
	path=${line#*$'\t'}
	read -r index work _ <<<"${line%%$'\t'*}"
	if [[ $index == i/-text || $work == w/-text ]]; then
		bad+=("$path: binary")
	fi
	if [[ -f $path ]]; then
		size=$(stat -c %s -- "$path")
		if ((size > limit)); then
			bad+=("$path: $size bytes, over 1 MiB")
		fi
	fi
done < <(git ls-files --eol -z)

if ((${#bad[@]} > 0)); then
	echo "tracked files that do not belong in the tree (build them, or fetch them, instead):"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
