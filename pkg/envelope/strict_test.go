package envelope

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateStrict(t *testing.T) {
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	tooDeep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	var many strings.Builder
	many.WriteString("{")
	for i := 0; i < 100; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
	}
	many.WriteString("}")
	manyDup := strings.TrimSuffix(many.String(), "}") + `,"kxxxxx":2}`

	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "object", in: `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, ok: true},
		{name: "scalars", in: `-0.5e-7`, ok: true},
		{name: "string escapes", in: `"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, ok: true},
		{name: "whitespace inside", in: "{ \"a\" :\t[ 1 ,\n2 ] }", ok: true},
		{name: "same key in sibling objects", in: `[{"a":1},{"a":2}]`, ok: true},
		{name: "same key at two levels", in: `{"a":{"a":1}}`, ok: true},
		{name: "keys differing in case", in: `{"a":1,"A":2}`, ok: true},
		{name: "many keys", in: many.String(), ok: true},
		{name: "max depth", in: deep, ok: true},
		{name: "empty", in: ``},
		{name: "leading whitespace", in: ` 1`},
		{name: "trailing whitespace", in: `1 `},
		{name: "two values", in: `1 2`},
		{name: "duplicate key", in: `{"a":1,"a":1}`},
		{name: "duplicate key, escaped", in: `{"a":1,"\u0061":1}`},
		{name: "duplicate key among many", in: manyDup},
		{name: "duplicate key deep", in: `[[{"x":{"y":1,"y":2}}]]`},
		{name: "too deep", in: tooDeep},
		{name: "trailing comma", in: `[1,]`},
		{name: "leading zero", in: `01`},
		{name: "bare fraction", in: `1.`},
		{name: "bare exponent", in: `1e`},
		{name: "plus sign", in: `+1`},
		{name: "single quotes", in: `'a'`},
		{name: "raw control character", in: "\"a\tb\""},
		{name: "invalid UTF-8", in: "\"\xc3\x28\""},
		{name: "overlong UTF-8", in: "\"\xc0\xaf\""},
		{name: "UTF-8 surrogate", in: "\"\xed\xa0\x80\""},
		{name: "lone high surrogate", in: `"\ud800"`},
		{name: "lone low surrogate", in: `"\udc00"`},
		{name: "high surrogate then non-surrogate", in: `"\ud800\u0041"`},
		{name: "bad escape", in: `"\x"`},
		{name: "short unicode escape", in: `"\u12"`},
		{name: "unterminated", in: `{"a":1`},
		{name: "NaN", in: `NaN`},
		{name: "mismatched", in: `[}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateStrict([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("validateStrict = %v, want ok=%v", err, tt.ok)
			}
			// Nothing accepted here may be rejected by encoding/json.
			if err == nil && !json.Valid([]byte(tt.in)) {
				t.Error("accepted what encoding/json rejects")
			}
		})
	}
}

func TestSkipLenient(t *testing.T) {
	tests := []struct {
		in  string
		end int // -1: no end
	}{
		{`{"a":"}"}x`, 9},
		{`[1,{]]`, 6},
		{`"a\"b"x`, 6},
		{`truex}`, 5},
		{`-1.5e+3,`, 7},
		{`{"a":1`, -1},
		{`"abc`, -1},
		{`,`, -1},
		{``, -1},
	}
	for _, tt := range tests {
		end, ok := skipLenient([]byte(tt.in), 0)
		if !ok {
			end = -1
		}
		if end != tt.end {
			t.Errorf("skipLenient(%q) = %d, want %d", tt.in, end, tt.end)
		}
	}
}
