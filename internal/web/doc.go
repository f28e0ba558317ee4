// Package web renders raibid's web pages: the job list and the job page (the
// target of commit status links), from embedded html/template files, CSS and
// one script, with no build step and nothing from a CDN. It owns the HTML,
// the ANSI-to-HTML log rendering and the login session and CSRF tokens; the
// server package owns the routes and the data.
package web
