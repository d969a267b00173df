package loadbench

import (
	"fmt"
	"image/color"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WritePNG draws the close's doors side by side in four panels (SQLite's four, then the
// PostgreSQL mode's two): saturation throughput, latency quantiles at the fixed rate, CPU
// per close and heap allocation per close.
func (r *Result) WritePNG(w io.Writer) error {
	names := []string{"simulator", "floor", "durable", "gateway"}
	doors := slices.Clone(r.Close.Rows)
	if r.Postgres != nil {
		names = append(names, "durable PG", "gateway PG")
		doors = append(doors, r.Postgres.Rows...)
	}
	names = names[:min(len(names), len(doors))]
	doors = doors[:len(names)]
	col := func(f func(Row) float64) plotter.Values {
		v := make(plotter.Values, len(doors))
		for i, row := range doors {
			v[i] = f(row)
		}
		return v
	}

	panels := []struct {
		title, unit string
		series      []plotter.Values
		legend      []string
	}{
		{"Saturation", "closes/s", []plotter.Values{col(func(x Row) float64 { return x.Saturation })}, nil},
		{fmt.Sprintf("Latency at %d/s (PostgreSQL: %d/s)", r.Close.Rate, r.pgRate()), "ms", []plotter.Values{
			col(func(x Row) float64 { return x.P50.Seconds() * 1e3 }),
			col(func(x Row) float64 { return x.P99.Seconds() * 1e3 }),
			col(func(x Row) float64 { return x.P999.Seconds() * 1e3 }),
		}, []string{"p50", "p99", "p99.9"}},
		{"CPU per close (process behind the door)", "µs", []plotter.Values{
			col(func(x Row) float64 { return x.CPUPerRequest.Seconds() * 1e6 }),
		}, nil},
		{"Heap allocated per close", "KiB", []plotter.Values{
			col(func(x Row) float64 { return x.AllocBytesPerRequest / 1024 }),
		}, nil},
	}
	palette := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}

	const rows, cols = 2, 2
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	for k, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		p.NominalX(names...)
		width := vg.Points(36) / vg.Length(len(pn.series))
		for s, vals := range pn.series {
			bars, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return err
			}
			bars.Color = palette[s%len(palette)]
			bars.LineStyle.Width = 0
			bars.Offset = width * vg.Length(2*s-len(pn.series)+1) / 2
			p.Add(bars)
			if pn.legend != nil {
				p.Legend.Add(pn.legend[s], bars)
			}
		}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		plots[k/cols][k%cols] = p
	}

	img := vgimg.New(vg.Points(1100), vg.Points(620))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range rows {
		for j := range cols {
			plots[i][j].Draw(canvases[i][j])
		}
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func (r *Result) pgRate() int {
	if r.Postgres == nil {
		return 0
	}
	return r.Postgres.Rate
}
