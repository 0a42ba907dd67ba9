//go:build unix

package store

import "golang.org/x/sys/unix"

// freeBytes is how many bytes an unprivileged process may still write on
// the file system holding path; ok is false if that cannot be told.
func freeBytes(path string) (n uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
