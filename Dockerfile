# syntax=docker/dockerfile:1
# One image for every kube-l2tp component:
#   kube-l2tp-operator   the operator (runs as the non-root user 65532, no capabilities)
#   kube-l2tp-datapath   the node agent (the operator's datapath pod runs it as root with exactly
#                        NET_ADMIN, NET_RAW and SYS_ADMIN, hostNetwork; see docs/install.md)
#   /app/cmd/cni/shim/build/kube-l2tp
#                        the CNI executable (static C), copied onto each node by the agent
# The binaries are built exactly as the tests build them: `npm ci`, scripts/build-native.sh (the npm
# install hook: node-gyp for the native addons, make for the CNI shim) and `tsc -p tsconfig.json`.
#   docker build -t ghcr.io/kube-l2tp/kube-l2tp:0.1.0 .
# Checked by scripts/check-dockerfile.sh (hadolint and the rules this image promises).

# The Node.js release of the base image; the image built without Docker (npm run image) takes the same one
ARG NODE_VERSION=20.19.5
# The base of both stages, pinned by digest (the tag is for people; Docker pulls by the digest, so a
# re-pushed tag changes nothing). Its tag must name NODE_VERSION (scripts/check-dockerfile.sh). To move
# to a newer image of the same tag, or to another NODE_VERSION, take the digest of the multi-platform
# index that
#   docker buildx imagetools inspect node:<NODE_VERSION>-bookworm-slim
# prints ("Digest:"), and replace the one below.
ARG BASE_IMAGE=node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3

# ---- build: native addons, CNI shim, TypeScript -------------------------------------------------------
FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# the slim base has Node.js, its headers and npm, no compilers: python3, make and g++ for node-gyp (the
# N-API addons), gcc and libc6-dev for the static CNI shim, clang and llvm for the eBPF programs,
# bpftool for their skeleton, libbpf's headers for both
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make gcc g++ libc6-dev clang llvm libbpf-dev bpftool \
 && rm -rf /var/lib/apt/lists/*
# dependencies first (cached while the lockfile does not change); native parts need the sources
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN bash scripts/build-native.sh \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund
# the runtime tree: package.json (the agent reads its version), production node_modules, dist, every
# native addon build/Release/*.node (not the unit tests' *_selftest.node) and eBPF object build/*.bpf.o
# at its source path (where the code loads it), the CNI shim
RUN mkdir -p /out/app \
 && cp -r package.json node_modules dist /out/app/ \
 && find . -path ./node_modules -prune -o \( -path '*/build/Release/*.node' -not -path '*/obj.target/*' -not -name '*_selftest.node' -o -path '*/build/*.bpf.o' \) -print0 | xargs -0 -r cp --parents -t /out/app/ \
 && cp --parents cmd/cni/shim/build/kube-l2tp /out/app/ \
 && test -x /out/app/cmd/cni/shim/build/kube-l2tp \
 && test -f /out/app/dist/operator/main.js \
 && test -f /out/app/dist/datapath/main.js \
 && rm -rf /out/app/dist/test /out/app/dist/bench

# ---- runtime: Node.js, iproute2 (`ip` and `tc` to look at a node from the pod; the agent runs
# neither), nothing else: the base image's npm, npx, corepack and yarn go (nothing runs them, and a
# package manager in a root pod is a tool for an intruder)
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="kube-l2tp" \
      org.opencontainers.image.description="L2TPv3 ethernet pseudowires for Kubernetes: operator, node agent and CNI plugin" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kube-l2tp/kube-l2tp"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules /opt/yarn-* \
 && rm -f /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build --chown=root:root /out/app /app
RUN printf '#!/bin/sh\nexec node /app/dist/operator/main.js "$@"\n' > /usr/local/bin/kube-l2tp-operator \
 && printf '#!/bin/sh\nexec node /app/dist/datapath/main.js "$@"\n' > /usr/local/bin/kube-l2tp-datapath \
 && chmod 0755 /usr/local/bin/kube-l2tp-operator /usr/local/bin/kube-l2tp-datapath
ENV NODE_ENV=production
WORKDIR /app
# Non-root by default (the operator). The datapath pod sets runAsUser: 0 and adds its capabilities.
USER 65532:65532
ENTRYPOINT ["kube-l2tp-operator"]
