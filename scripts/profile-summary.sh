#!/usr/bin/env bash
# Prints where a CPU profile of the bench process goes, by part: the share of
# samples whose stack passes through each part (a sample can count for more
# than one part: the gateway's handler runs inside the gRPC server).
set -euo pipefail
prof=$1
total=$(go tool pprof -top "$prof" 2>/dev/null | sed -n 's/.*Total samples = \([^ ]*\).*/\1/p')
echo "  profile: $prof, $total of samples"
share() {
	local line
	line=$(go tool pprof -top -focus="$2" "$prof" 2>/dev/null | grep -m1 'Showing nodes' || true)
	printf '  %-44s %s\n' "$1" "$(sed -n 's/.*accounting for \([^ ]*\), \([^ ]*\) of.*/\2 (\1)/p' <<<"$line")"
}
share "gRPC server (gateway side, incl. handlers)" 'grpc\.\(\*Server\)|grpc/internal/transport\.\(\*http2Server\)'
share "gRPC client (the load generator)" 'grpc\.\(\*ClientConn\)|grpc\.invoke|transport\.\(\*http2Client\)'
share "warren, gateway side (core, services)" 'warren/gateway\.|warren/core\.\(\*Client\)|warren/core\.\(\*Publisher\)|warren/core\.\(\*Subscription\)|warren/(fibsvc|tasksvc|queuesvc|logsvc)\.\(\*Service\)'
share "amqp091-go (gateway and worker)" 'amqp091-go'
share "warren, worker side (core.Server, handlers)" 'warren/core\.\(\*Server\)|warren/fibsvc\.Handler|warren/tasksvc\.\(\*Worker\)'
share "syscalls (read/write)" 'Syscall6'
share "memory allocation" 'runtime\.mallocgc'
share "garbage collector" 'runtime\.gcBgMarkWorker|runtime\.gcDrain'
share "scheduler (finding work, parking)" 'runtime\.findRunnable|runtime\.schedule'
