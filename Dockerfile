# syntax=docker/dockerfile:1
# Build: static binaries, module download in its own layer so code changes reuse it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gateway ./cmd/gateway \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/concursim ./cmd/concursim \
 && mkdir -p /out/data

# Run: no shell, no package manager, non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /out/concursim /usr/local/bin/
# The SQLite default lives here: mount a volume on it to keep state across containers.
COPY --from=build --chown=nonroot:nonroot --chmod=0700 /out/data /var/lib/gateway
USER nonroot:nonroot
EXPOSE 8080
ENV GATEWAY_ADDR=:8080 GATEWAY_DATA_DIR=/var/lib/gateway
VOLUME /var/lib/gateway
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/usr/local/bin/gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gateway"]
