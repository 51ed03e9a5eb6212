//go:build race

package server_test

// raceDetector is true under -race, whose shadow memory and larger stacks
// make memory measurements say nothing about a real build.
const raceDetector = true
