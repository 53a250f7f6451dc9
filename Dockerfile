# Portcullis container image: a static binary on distroless, non-root, read-only-root friendly.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t portcullis .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/portcullis ./cmd/portcullis

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
USER 65532:65532
# gRPC ext_authz, HTTP forward-auth, admin (/metrics /healthz /readyz)
EXPOSE 9191 9192 9090
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.yaml"]
