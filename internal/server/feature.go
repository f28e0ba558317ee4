package server

import "github.com/raibid-labs/raibid-ci/internal/api"

// A Feature is an optional part of the server — mirrors, pipeline
// secrets, schedules, artifacts — kept in its own file with what it needs.
// It names the routes it answers and the control loops it runs; New
// registers both. A new feature is a file here and a line where raibid
// wires the server (internal/cli), not more fields on Options, more rows in
// the core route table or more cases in controlLoops.
//
// A feature built without its dependency (mirroring off, no secrets key)
// still answers its routes, each saying how to turn it on: clients see the
// same API whatever the server was started with.
type Feature interface {
	// attach hands the feature the server it is part of, once, from New: a
	// Feature value serves one Server.
	attach(s *Server) featureParts
}

// featureParts is what a feature adds to the server.
type featureParts struct {
	routes []route
	// pages are web pages (/ui/...), behind the pages' login (ui.go).
	pages []route
	// loops start after the core loops, in the order the features were
	// given, and stop before them (loops.go).
	loops []controlLoop
}

// systemFigures is implemented by a feature that adds to GET /system.
type systemFigures interface {
	addSystemFigures(*api.System)
}
