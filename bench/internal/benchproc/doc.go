// Package benchproc is what the bench tools share about the processes they build, run and measure
// (sessiond of this tree or a commit, pgbench, /proc): one copy, so every tool handles the daemon alike.
package benchproc
