// Package ckpt writes and reads trainer-state files and manages checkpoint directories.
//
// A state file holds a caller-defined metadata value (step, RNG state, data cursor,
// schedule: anything encoding/gob can encode) and a list of named float32 tensors
// (optimizer moments, possibly gigabytes). Layout:
//
//	"CIRSTATE" | version uint32 LE | zstd frame {
//	    header length uint64 LE | gob header (metadata bytes, tensor names and lengths)
//	    | each tensor's float32 values, raw little-endian | "CIREND!!" }
//
// Tensors go through the zstd stream as raw bytes (no per-element encoding), so writing and
// reading run at the compressor's speed. The zstd frame carries a checksum, and the end marker
// catches a stream cut at a frame boundary. Files are written atomically (temporary file,
// fsync, rename, fsync of the directory).
//
// Checkpoint directories are named step-000123 under a root, with a "latest" file naming the
// newest complete one; Begin/Commit build one atomically and prune to the last K.
package ckpt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// Magic opens every state file.
const Magic = "CIRSTATE"

// Version is the format version this package writes and reads.
const Version = 1

const endMarker = "CIREND!!"

// maxHeader bounds the header a reader accepts, so a corrupt length cannot exhaust memory.
const maxHeader = 1 << 30

// ErrCorrupt is wrapped by every error about a file that is not a valid state file
// (wrong magic, bad compressed data, truncation, undecodable header).
var ErrCorrupt = errors.New("corrupt trainer-state file")

// ErrVersion is wrapped by the error for a state file of a version this package cannot read.
var ErrVersion = errors.New("unsupported trainer-state version")

// Tensor is a named float32 slice.
type Tensor struct {
	Name string
	Data []float32
}

type header struct {
	Meta  []byte
	Names []string
	Lens  []int64
}

// littleEndian reports whether float32 slices can be viewed as little-endian bytes in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Write encodes meta (with encoding/gob) and tensors to w in the state-file format.
func Write(w io.Writer, meta any, tensors []Tensor) error {
	var mb bytes.Buffer
	if err := gob.NewEncoder(&mb).Encode(meta); err != nil {
		return fmt.Errorf("ckpt: encode metadata: %w", err)
	}
	h := header{Meta: mb.Bytes()}
	for _, t := range tensors {
		h.Names = append(h.Names, t.Name)
		h.Lens = append(h.Lens, int64(len(t.Data)))
	}
	var hb bytes.Buffer
	if err := gob.NewEncoder(&hb).Encode(h); err != nil {
		return fmt.Errorf("ckpt: encode header: %w", err)
	}
	var pre [12]byte
	copy(pre[:], Magic)
	binary.LittleEndian.PutUint32(pre[8:], Version)
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	if err != nil {
		return fmt.Errorf("ckpt: zstd: %w", err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hb.Len()))
	if _, err := zw.Write(n[:]); err != nil {
		zw.Close()
		return err
	}
	if _, err := zw.Write(hb.Bytes()); err != nil {
		zw.Close()
		return err
	}
	for _, t := range tensors {
		if err := writeFloats(zw, t.Data); err != nil {
			zw.Close()
			return fmt.Errorf("ckpt: tensor %s: %w", t.Name, err)
		}
	}
	if _, err := io.WriteString(zw, endMarker); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

const chunk = 1 << 20 // floats per conversion chunk on big-endian machines

func writeFloats(w io.Writer, v []float32) error {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		_, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
		return err
	}
	buf := make([]byte, 4*min(chunk, len(v)))
	for len(v) > 0 {
		n := min(chunk, len(v))
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		if _, err := w.Write(buf[:4*n]); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

func readFloats(r io.Reader, v []float32) error {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		_, err := io.ReadFull(r, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
		return err
	}
	buf := make([]byte, 4*min(chunk, len(v)))
	for len(v) > 0 {
		n := min(chunk, len(v))
		if _, err := io.ReadFull(r, buf[:4*n]); err != nil {
			return err
		}
		for i := range v[:n] {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		v = v[n:]
	}
	return nil
}

// Alloc returns the buffer to read tensor name of n values into (len n), or an error to
// refuse it. Read uses make when alloc is nil.
type Alloc func(name string, n int) ([]float32, error)

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// Read decodes a state file from r: the metadata into meta (a pointer, as for gob) and the
// tensors into buffers from alloc. Errors about the data wrap ErrCorrupt or ErrVersion.
func Read(r io.Reader, meta any, alloc Alloc) ([]Tensor, error) {
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, corrupt("too short for a header (%v)", err)
	}
	if string(pre[:8]) != Magic {
		return nil, corrupt("wrong magic %q, want %q", pre[:8], Magic)
	}
	if v := binary.LittleEndian.Uint32(pre[8:]); v != Version {
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrVersion, v, Version)
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, corrupt("zstd: %v", err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<16)
	var n [8]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return nil, corrupt("reading header length: %v", err)
	}
	hl := binary.LittleEndian.Uint64(n[:])
	if hl > maxHeader {
		return nil, corrupt("header length %d too large", hl)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, corrupt("reading header: %v", err)
	}
	var h header
	if err := gob.NewDecoder(bytes.NewReader(hb)).Decode(&h); err != nil {
		return nil, corrupt("decoding header: %v", err)
	}
	if len(h.Names) != len(h.Lens) {
		return nil, corrupt("header names %d tensors but lengths %d", len(h.Names), len(h.Lens))
	}
	if err := gob.NewDecoder(bytes.NewReader(h.Meta)).Decode(meta); err != nil {
		return nil, fmt.Errorf("%w: decoding metadata into %T: %v", ErrCorrupt, meta, err)
	}
	if alloc == nil {
		alloc = func(_ string, n int) ([]float32, error) { return make([]float32, n), nil }
	}
	out := make([]Tensor, len(h.Names))
	for i, name := range h.Names {
		l := h.Lens[i]
		if l < 0 || l > math.MaxInt32*4 {
			return nil, corrupt("tensor %s: length %d out of range", name, l)
		}
		buf, err := alloc(name, int(l))
		if err != nil {
			return nil, fmt.Errorf("ckpt: tensor %s: %w", name, err)
		}
		if len(buf) != int(l) {
			return nil, fmt.Errorf("ckpt: tensor %s: buffer has %d values, file has %d", name, len(buf), l)
		}
		if err := readFloats(br, buf); err != nil {
			return nil, corrupt("tensor %s (%d values): %v", name, l, err)
		}
		out[i] = Tensor{name, buf}
	}
	var end [len(endMarker)]byte
	if _, err := io.ReadFull(br, end[:]); err != nil || string(end[:]) != endMarker {
		return nil, corrupt("missing end marker (truncated?)")
	}
	// Drain to the end of the frame so the zstd checksum is verified.
	if extra, err := io.Copy(io.Discard, br); err != nil {
		return nil, corrupt("zstd: %v", err)
	} else if extra != 0 {
		return nil, corrupt("%d bytes after the end marker", extra)
	}
	return out, nil
}

// WriteFile writes a state file atomically: to a temporary file in the same directory,
// fsynced, renamed over path, and the directory fsynced.
func WriteFile(path string, meta any, tensors []Tensor) error {
	return AtomicWrite(path, func(w io.Writer) error { return Write(w, meta, tensors) })
}

// ReadFile reads the state file at path (see Read); errors name the file.
func ReadFile(path string, meta any, alloc Alloc) ([]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	defer f.Close()
	t, err := Read(bufio.NewReaderSize(f, 1<<20), meta, alloc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// AtomicWrite writes the file at path through write: into a temporary file beside it, then
// fsync, rename over path and fsync of the directory, so path holds either the old or the
// complete new content. The temporary file is removed on failure.
func AtomicWrite(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("ckpt: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return fmt.Errorf("ckpt: writing %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("ckpt: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("ckpt: fsync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("ckpt: closing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ckpt: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ckpt: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ckpt: fsync %s: %w", dir, err)
	}
	return nil
}
