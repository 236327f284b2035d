//go:build !unix

package cli

import "os"

// tryLock is a no-op where flock is missing: a second instance on the same
// data folder is not detected there.
func tryLock(*os.File) (held bool, err error) { return false, nil }

func unlock(*os.File) {}
