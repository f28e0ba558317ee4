// Package archtest enforces raibid's package boundaries: each package of
// internal/ sits on a floor, imports point only to lower floors, and a few
// named seams hold (agents never import the server, the dashboard never
// reads Redis, the domain imports nothing of ours). Its test reads the real
// import graph with `go list`; `make lint` and .ci/run run it.
package archtest
