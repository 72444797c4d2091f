# syntax=docker/dockerfile:1
# warren's image: the static warren binary (gateway, worker and the client
# commands) and grpc-health-probe, on distroless/static: CA certificates,
# tzdata, a nonroot user, no shell. compose.yaml runs it as the gateway and
# as the worker.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# The image has no shell for a health check to run: the gateway serves
# grpc.health.v1, and this probe asks it.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOBIN=/out go install -ldflags='-s -w' github.com/grpc-ecosystem/grpc-health-probe@v0.4.62
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags='-s -w' -o /out/warren ./cmd/warren

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warren /out/grpc-health-probe /usr/local/bin/
USER nonroot:nonroot
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/warren"]
CMD ["gateway", "--listen", ":50051"]
