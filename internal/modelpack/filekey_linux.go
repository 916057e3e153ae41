package modelpack

import (
	"os"
	"syscall"
)

// statKey adds the device, inode and change time to k.
func statKey(k *fileKey, st os.FileInfo) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(sys.Dev), sys.Ino
		k.ctim = sys.Ctim.Nano()
	}
}
