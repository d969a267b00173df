//go:build race

package httpapi

const raceEnabled = true // tests that only the race detector can fail run
