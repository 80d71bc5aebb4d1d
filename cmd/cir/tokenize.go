package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"cir/tokenizer"
)

const tokenizerUsage = "a tokenizer.json, or a model directory holding one (or the byte vocabulary's marker)"

// loadTokenizer loads the --tokenizer argument of command name as a user error when it fails.
func loadTokenizer(name, path string) (tokenizer.Tokenizer, error) {
	tk, err := tokenizer.Load(path)
	if err != nil {
		return nil, errorf("--tokenizer takes "+tokenizerUsage, "%s: %v", name, err)
	}
	return tk, nil
}

// cmdTokenize encodes text from stdin: all of it to one JSON array of ids, or with --jsonl
// each line {"text": ...} to a line {"ids": [...]}.
func cmdTokenize(e *env, args []string) error {
	fs := e.flags("tokenize")
	path := fs.String("tokenizer", "", tokenizerUsage)
	jsonl := fs.Bool("jsonl", false, "read lines {\"text\": ...} and write lines {\"ids\": [...]}")
	plain := fs.Bool("plain", false, "treat special tokens written in the text (<|im_end|>, ...) as plain text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "tokenizer"); err != nil {
		return err
	}
	tk, err := loadTokenizer("tokenize", *path)
	if err != nil {
		return err
	}
	encode := tk.Encode
	if *plain {
		encode = tk.EncodePlain
	}
	out := bufio.NewWriter(e.stdout)
	if !*jsonl {
		text, err := io.ReadAll(e.stdin)
		if err != nil {
			return fmt.Errorf("tokenize: read stdin: %w", err)
		}
		out.Write(appendIDs(nil, encode(string(text))))
		out.WriteByte('\n')
		return out.Flush()
	}
	err = eachLine(e.stdin, func(n int, line []byte) error {
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Text == nil {
			if err == nil {
				err = errors.New(`no string field "text"`)
			}
			return errorf(`with --jsonl each line is a JSON object {"text": "..."}`, "tokenize: stdin line %d: %v", n, err)
		}
		b := append([]byte(`{"ids":`), appendIDs(nil, encode(*rec.Text))...)
		_, err := out.Write(append(b, "}\n"...))
		return err
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// cmdDetokenize decodes JSON arrays of ids from stdin to their text, or with --jsonl each line
// {"ids": [...]} to a line {"text": ...}.
func cmdDetokenize(e *env, args []string) error {
	fs := e.flags("detokenize")
	path := fs.String("tokenizer", "", tokenizerUsage)
	jsonl := fs.Bool("jsonl", false, "read lines {\"ids\": [...]} and write lines {\"text\": ...}")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "tokenizer"); err != nil {
		return err
	}
	tk, err := loadTokenizer("detokenize", *path)
	if err != nil {
		return err
	}
	check := func(where string, ids []int64) ([]int32, error) {
		out := make([]int32, len(ids))
		for i, id := range ids {
			if id < 0 || id >= int64(tk.VocabSize()) {
				return nil, errorf(fmt.Sprintf("ids are in [0, %d)", tk.VocabSize()), "detokenize: %s: id %d out of range", where, id)
			}
			out[i] = int32(id)
		}
		return out, nil
	}
	out := bufio.NewWriter(e.stdout)
	if !*jsonl {
		dec := json.NewDecoder(e.stdin)
		for n := 1; ; n++ {
			var ids []int64
			if err := dec.Decode(&ids); err == io.EOF {
				break
			} else if err != nil {
				return errorf("stdin holds JSON arrays of integer ids, e.g. [9707, 1879]", "detokenize: stdin array %d: %v", n, err)
			}
			ids32, err := check(fmt.Sprintf("stdin array %d", n), ids)
			if err != nil {
				return err
			}
			out.WriteString(tk.Decode(ids32))
		}
		return out.Flush()
	}
	err = eachLine(e.stdin, func(n int, line []byte) error {
		var rec struct {
			IDs *[]int64 `json:"ids"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.IDs == nil {
			if err == nil {
				err = errors.New(`no field "ids"`)
			}
			return errorf(`with --jsonl each line is a JSON object {"ids": [...]}`, "detokenize: stdin line %d: %v", n, err)
		}
		ids, err := check(fmt.Sprintf("stdin line %d", n), *rec.IDs)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(struct {
			Text string `json:"text"`
		}{tk.Decode(ids)})
		_, err = out.Write(append(b, '\n'))
		return err
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// eachLine calls fn with each non-blank line of r and its 1-based number.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			if ferr := fn(n, line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// appendIDs appends ids as a JSON array.
func appendIDs(b []byte, ids []int32) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return append(b, ']')
}
