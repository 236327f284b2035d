package query

import "strings"

// Statement is one statement of an SQL script.
type Statement struct {
	// Comment is the text of the comment lines just before the statement
	// (its "header"), without the comment markers; empty if none.
	Comment string
	// SQL is the statement without its trailing semicolon and without the
	// header comment.
	SQL string
	// Line is the 1-based line where the statement starts.
	Line int
}

// Split splits an SQL script into statements on semicolons that are
// outside quotes ('...', "..."), dollar quotes ($$...$$, $tag$...$tag$)
// and comments (-- to end of line, /* ... */). Chunks holding only comments
// and white space are dropped.
func Split(script string) []Statement {
	var out []Statement
	start := 0
	emit := func(end int) {
		if st, ok := makeStatement(script, start, end); ok {
			out = append(out, st)
		}
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == '\'' || c == '"':
			i = skipQuoted(script, i, c)
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			if nl := strings.IndexByte(script[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(script)
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			if end := strings.Index(script[i+2:], "*/"); end >= 0 {
				i += 2 + end + 2
			} else {
				i = len(script)
			}
		case c == '$':
			i = skipDollar(script, i)
		case c == ';':
			emit(i)
			i++
			start = i
		default:
			i++
		}
	}
	emit(len(script))
	return out
}

// skipQuoted returns the index after the quoted text starting at i; a
// doubled quote is an escaped one.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipDollar skips a dollar-quoted string ($tag$ ... $tag$) starting at i,
// or just the '$' when it starts none (a parameter such as $1).
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (j > i+1 && s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	tag := s[i : j+1]
	if end := strings.Index(s[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag)
	}
	return len(s)
}

// makeStatement trims the chunk s[start:end], separating the comment lines
// at its head from the statement.
func makeStatement(s string, start, end int) (Statement, bool) {
	chunk := s[start:end]
	var comment []string
	i := 0
	for i < len(chunk) {
		// Skip white space.
		j := i
		for j < len(chunk) && strings.ContainsRune(" \t\r\n", rune(chunk[j])) {
			j++
		}
		if strings.Count(chunk[i:j], "\n") >= 2 {
			// A blank line ends a comment block: only the block right
			// above the statement is its header.
			comment = nil
		}
		rest := chunk[j:]
		switch {
		case strings.HasPrefix(rest, "--"):
			nl := strings.IndexByte(rest, '\n')
			line := rest
			if nl >= 0 {
				line = rest[:nl]
			}
			comment = append(comment, strings.TrimSpace(strings.TrimLeft(line, "-")))
			i = j + len(line)
			continue
		case strings.HasPrefix(rest, "/*"):
			e := strings.Index(rest[2:], "*/")
			if e < 0 {
				i = len(chunk)
				continue
			}
			for _, l := range strings.Split(rest[2:2+e], "\n") {
				l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*"))
				comment = append(comment, strings.TrimSpace(l))
			}
			i = j + 2 + e + 2
			continue
		}
		i = j
		break
	}
	body := strings.TrimSpace(chunk[i:])
	if body == "" {
		return Statement{}, false
	}
	// Drop blank comment lines at both ends.
	for len(comment) > 0 && comment[0] == "" {
		comment = comment[1:]
	}
	for len(comment) > 0 && comment[len(comment)-1] == "" {
		comment = comment[:len(comment)-1]
	}
	line := 1 + strings.Count(s[:start+i], "\n")
	return Statement{Comment: strings.Join(comment, "\n"), SQL: body, Line: line}, true
}
