package conf

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/sessiond/sessiond/spi"
)

func TestParser(t *testing.T) {
	lookup := func(name string) (string, bool) {
		v, ok := map[string]string{"HOST": "db.internal", "EMPTY": ""}[name]
		return v, ok
	}
	cases := []struct {
		name, in string
		want     map[string]any
		lines    map[string]int
	}{
		{"comments and blanks", "# c\n\n  # indented\r\nk=v\r\n", map[string]any{"k": "v"}, map[string]int{"k": 4}},
		{"spaces around =", "  k  =  v w  ", map[string]any{"k": "v w"}, map[string]int{"k": 1}},
		{"= in value", "k=a=b", map[string]any{"k": "a=b"}, map[string]int{"k": 1}},
		{"empty value", "k=", map[string]any{"k": ""}, map[string]int{"k": 1}},
		{"variable", "k=pg://${HOST}:5432", map[string]any{"k": "pg://db.internal:5432"}, nil},
		{"set empty variable beats default", "k=${EMPTY:x}", map[string]any{"k": ""}, nil},
		{"default", "k=${PORT:5432}", map[string]any{"k": "5432"}, nil},
		{"default with colon", "k=${URL:http://x}", map[string]any{"k": "http://x"}, nil},
		{"two variables", "k=${HOST}/${DB:app}", map[string]any{"k": "db.internal/app"}, nil},
		{"escaped", `k=\${HOST}`, map[string]any{"k": "${HOST}"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Parser{Name: "f", Lookup: lookup, Lines: map[string]int{}}
			got, err := p.Unmarshal([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Unmarshal = %v, want %v", got, tc.want)
			}
			if tc.lines != nil && !reflect.DeepEqual(p.Lines, tc.lines) {
				t.Errorf("Lines = %v, want %v", p.Lines, tc.lines)
			}
			// Marshal writes what Unmarshal reads back.
			b, _ := p.Marshal(got)
			again, err := (&Parser{}).Unmarshal(b)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip via %q = %v, %v", b, again, err)
			}
		})
	}
}

func TestParserWithKoanfFileProvider(t *testing.T) {
	k := koanf.New(".")
	p := &Parser{Name: "testdata/layers.conf", Lookup: func(string) (string, bool) { return "n1", true }}
	if err := k.Load(file.Provider("testdata/layers.conf"), p); err != nil {
		t.Fatal(err)
	}
	if k.String("http-port") != "8081" || k.String("node-id") != "n1" || !k.Exists("spi-offline-preload--database--batch-size") {
		t.Errorf("koanf holds %v", k.All())
	}
}

// The shipped default file parses to nothing (every option commented out), and each
// commented-out option, uncommented, is a key sessiond knows.
func TestShippedConfigFile(t *testing.T) {
	b, err := os.ReadFile("sessiond.conf")
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&Parser{Name: "sessiond.conf"}).Unmarshal(b)
	if err != nil || len(got) != 0 {
		t.Fatalf("shipped file sets %v, %v; want nothing", got, err)
	}
	var probs problems
	c := newCatalog(testDescs(), true, &probs)
	var keys []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "#")
		if k, _, ok := strings.Cut(line, "="); ok && validKey(k) {
			c.register(k)
			keys = append(keys, k)
		}
	}
	if len(keys) < len(ServerOptions()) {
		t.Errorf("only %d commented-out options: %v", len(keys), keys)
	}
	for _, k := range keys {
		if p := c.place(k); !p.ok {
			t.Errorf("sessiond.conf shows unknown key %s: %s", k, p.why)
		}
	}
	if !c.thirdParty[spi.UserSessions]["acme"] {
		t.Error("the registration example does not register acme")
	}
}
