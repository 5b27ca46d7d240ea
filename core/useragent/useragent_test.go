package useragent

import "testing"

func TestParseUserAgentTellsBrowserAndOS(t *testing.T) {
	for _, tc := range []struct {
		name, ua string
		want     Device
	}{
		{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", Device{"Firefox 128", "Linux"}},
		{"Firefox on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", Device{"Firefox 127", "Windows"}},
		{"Chrome on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Device{"Chrome 126", "macOS"}},
		{"Chrome on Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36", Device{"Chrome 126", "Android"}},
		{"Chrome on ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36", Device{"Chrome 125", "ChromeOS"}},
		{"Edge on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68", Device{"Edge 126", "Windows"}},
		{"Opera on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/110.0.0.0", Device{"Opera 110", "Windows"}},
		{"Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", Device{"Safari 17", "macOS"}},
		{"Safari on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", Device{"Safari 17", "iOS"}},
		{"Chrome on iPad", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", Device{"Chrome 126", "iPadOS"}},
		{"Firefox on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15", Device{"Firefox 127", "iOS"}},
		{"Samsung Internet", "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", Device{"Samsung Internet 25", "Android"}},
		{"curl", "curl/8.5.0", Device{"curl 8", ""}},
		{"empty", "", Device{}},
		{"unknown", "conformance/1.0", Device{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.ua); got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.ua, got, tc.want)
			}
		})
	}
}

func TestDeviceStringSaysUnknownWhenNothingIsKnown(t *testing.T) {
	for _, tc := range []struct {
		d    Device
		want string
	}{
		{Device{}, "unknown"},
		{Device{Browser: "curl 8"}, "curl 8"},
		{Device{OS: "Linux"}, "Linux"},
		{Device{"Firefox 128", "Linux"}, "Firefox 128 on Linux"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.d, got, tc.want)
		}
	}
}
