// Package useragent tells the browser and operating system a User-Agent header names, for
// the pages that show sessions as devices (the account console's Device activity).
package useragent

import (
	"regexp"
	"strings"
)

// Device is a browser and operating system as a user agent string names them. It is a
// guess from a string the client chose: shown, never trusted.
type Device struct {
	Browser string // e.g. "Firefox 128", "Chrome 126"; "" when unknown
	OS      string // e.g. "Windows", "macOS", "Android"; "" when unknown
}

// Mobile reports whether the system is a phone's or a tablet's.
func (d Device) Mobile() bool {
	return d.OS == "Android" || d.OS == "iOS" || d.OS == "iPadOS"
}

// String is the device as one cell shows it.
func (d Device) String() string {
	switch {
	case d.Browser == "" && d.OS == "":
		return "unknown"
	case d.OS == "":
		return d.Browser
	case d.Browser == "":
		return d.OS
	}
	return d.Browser + " on " + d.OS
}

// browsers are tried in order: several browsers name the ones they are built on too
// (Edge and Opera say Chrome and Safari; Chrome says Safari), so the most specific comes
// first.
var browsers = []struct {
	name string
	re   *regexp.Regexp
}{
	{"Edge", regexp.MustCompile(`\bEdg(?:e|A|iOS)?/(\d+)`)},
	{"Opera", regexp.MustCompile(`\bOPR/(\d+)`)},
	{"Samsung Internet", regexp.MustCompile(`\bSamsungBrowser/(\d+)`)},
	{"Firefox", regexp.MustCompile(`\b(?:Firefox|FxiOS)/(\d+)`)},
	{"Chrome", regexp.MustCompile(`\b(?:Chrome|CriOS)/(\d+)`)},
	{"Safari", regexp.MustCompile(`\bVersion/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/`)},
	{"curl", regexp.MustCompile(`^curl/(\d+)`)},
}

// systems are tried in order: Android says Linux, iOS says "like Mac OS X".
var systems = []struct {
	name, marker string
}{
	{"Android", "Android"},
	{"iOS", "iPhone"},
	{"iPadOS", "iPad"},
	{"ChromeOS", "CrOS"},
	{"Windows", "Windows"},
	{"macOS", "Macintosh"},
	{"Linux", "Linux"},
}

// maxUserAgent bounds what is parsed: user agents are a few hundred bytes; a longer one
// is cut, not scanned whole.
const maxUserAgent = 1024

// Parse tells the browser and operating system of a User-Agent header.
func Parse(ua string) Device {
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	var d Device
	for _, b := range browsers {
		if m := b.re.FindStringSubmatch(ua); m != nil {
			d.Browser = b.name + " " + m[1]
			break
		}
	}
	for _, s := range systems {
		if strings.Contains(ua, s.marker) {
			d.OS = s.name
			break
		}
	}
	return d
}
