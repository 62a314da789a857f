// Command benchchart renders the end-to-end table of Balcony's benchmarks
// (BenchmarkEndToEnd in internal/e2ebench, through real XMPP servers per
// RFC 6120) as an SVG bar chart: for each server, each encrypted
// mechanism's throughput as a ratio to plaintext measured in the same run
// (the "<row>-x-ref" metrics), with the 0.8x target drawn across.
//
//	go test -run '^$' -bench EndToEnd ./internal/e2ebench | go run ./internal/benchchart > chart.svg
//
// It reads benchmark output on standard input and writes the SVG to
// standard output. Lines of other benchmarks are ignored; with -count N
// the ratios of one server are averaged over its lines.
package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// target is the throughput ratio to plaintext the design asks for.
const target = 0.8

// bar is one mechanism's ratio on one server.
type bar struct {
	server, row string
	ratio       float64
}

// parse reads benchmark output and returns the mean "<row>-x-ref" ratio of
// each server and row, in the order they first appear.
func parse(r io.Reader) ([]bar, error) {
	type key struct{ server, row string }
	sums := map[key][]float64{}
	var order []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "BenchmarkEndToEnd/") {
			continue
		}
		server := strings.TrimPrefix(f[0], "BenchmarkEndToEnd/")
		if i := strings.LastIndexByte(server, '-'); i > 0 {
			server = server[:i] // the GOMAXPROCS suffix
		}
		// f[1] is the iteration count; then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			row, ok := strings.CutSuffix(f[i+1], "-x-ref")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchchart: %s: %w", f[i+1], err)
			}
			k := key{server, row}
			if _, seen := sums[k]; !seen {
				order = append(order, k)
			}
			sums[k] = append(sums[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchchart: %w", err)
	}
	var bars []bar
	for _, k := range order {
		var s float64
		for _, v := range sums[k] {
			s += v
		}
		bars = append(bars, bar{k.server, k.row, s / float64(len(sums[k]))})
	}
	return bars, nil
}

// render writes the chart: one group of bars per server.
func render(w io.Writer, bars []bar, title string) error {
	const (
		barW, gap, groupGap = 56, 10, 40
		left, top, plotH    = 60, 50, 240
		bottom              = 70
	)
	var servers []string
	for _, b := range bars {
		if !slices.Contains(servers, b.server) {
			servers = append(servers, b.server)
		}
	}
	maxV := 1.2
	for _, b := range bars {
		maxV = max(maxV, b.ratio*1.1)
	}
	y := func(v float64) float64 { return top + plotH - v/maxV*plotH }
	width := left + 20
	for _, s := range servers {
		n := 0
		for _, b := range bars {
			if b.server == s {
				n++
			}
		}
		width += n*(barW+gap) + groupGap
	}
	// room for the title and the caption (about 7 px a character)
	width = max(width, left+7*len(title), 620)
	height := top + plotH + bottom
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for v := 0.0; v <= maxV+1e-9; v += 0.2 {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-20, y(v), y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end">%.1fx</text>`+"\n", left-6, y(v)+4, v)
	}
	x := left + groupGap/2
	colors := map[string]string{"ox": "#4e79a7", "otr": "#f28e2b", "esession": "#59a14f", "omemo": "#b07aa1", "omemo03": "#d7b5cf"}
	for _, s := range servers {
		x0 := x
		for _, b := range bars {
			if b.server != s {
				continue
			}
			c := colors[b.row]
			if c == "" {
				c = "#888"
			}
			p(`<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n", x, y(b.ratio), barW, y(0)-y(b.ratio), c)
			p(`<text x="%d" y="%.1f" text-anchor="middle">%.2fx</text>`+"\n", x+barW/2, y(b.ratio)-4, b.ratio)
			p(`<text x="%d" y="%.1f" text-anchor="middle">%s</text>`+"\n", x+barW/2, y(0)+16, html.EscapeString(b.row))
			x += barW + gap
		}
		p(`<text x="%d" y="%.1f" text-anchor="middle" font-weight="bold">%s</text>`+"\n", (x0+x-gap)/2, y(0)+36, html.EscapeString(s))
		x += groupGap
	}
	p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="6 4"/>`+"\n", left, width-20, y(target), y(target))
	p(`<text x="%d" y="%.1f" fill="#c00" text-anchor="end">target %.1fx</text>`+"\n", width-20, y(target)-4, target)
	p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, width-20, y(0), y(0))
	p(`<text x="%d" y="%d" fill="#555">throughput as a ratio to plaintext the server treats alike, measured in the same run</text>`+"\n", left, height-10)
	p("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func main() {
	title := "Balcony end to end: encrypted throughput / plaintext"
	if len(os.Args) > 1 {
		title = strings.Join(os.Args[1:], " ")
	}
	bars, err := parse(os.Stdin)
	if err == nil && len(bars) == 0 {
		err = fmt.Errorf("benchchart: no BenchmarkEndToEnd ratios (-x-ref) on input")
	}
	if err == nil {
		err = render(os.Stdout, bars, title)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
