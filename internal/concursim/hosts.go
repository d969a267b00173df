package concursim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// A real company meets two hosts: glz.api.concursolutions.com, where a request token is
// exchanged, and its data centre (us2, eu2, apj1, usg, each with a www- variant, or
// us-impl, emea-impl), named by the token answer's geolocation, where refreshes and API
// calls go. With Options.DataCentre set the Sim plays both: [Sim.ServeHTTP] is GLZ and
// [Sim.DataCentreHandler] the data centre. Each listener has its own handler, so which
// host a request came to never depends on its Host header. Then:
//
//   - token answers' geolocation is the DataCentre (unless Options.Geolocation says other);
//   - Batch-URLs and File-Urls name the DataCentre;
//   - the password grant is accepted on both hosts;
//   - a refresh_token grant at GLZ is answered, once per grant (a grant is what one
//     authorisation or request-token exchange started, through all its rotations), with
//     Concur's code 16 "user lives elsewhere" and the geolocation to retry at; the refresh
//     token is not spent. Options.NoRedirectRefresh turns this off;
//   - API calls with a live token at GLZ are refused with Options.RefusedStatus (403 by
//     default) and Concur's XML error, as a host refuses a token it did not issue.

// tokenPath is the OAuth2 token endpoint's path.
const tokenPath = "/oauth2/v0/token" // #nosec G101 -- a path, not a credential

// atDataCentre marks requests that came through DataCentreHandler.
type atDataCentre struct{}

// DataCentreHandler serves the simulator as the data-centre host, for a second listener
// whose origin is Options.DataCentre. The Sim's state is shared by both hosts.
func (s *Sim) DataCentreHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), atDataCentre{}, true)))
	})
}

// atGLZ reports whether r came to the GLZ host of a two-host simulator.
func (s *Sim) atGLZ(r *http.Request) bool {
	return s.opts.DataCentre != "" && r.Context().Value(atDataCentre{}) == nil
}

// origin is where URLs handed out point to: the DataCentre, the origin of the Geolocation
// option, or the origin the request arrived at.
func (s *Sim) origin(r *http.Request) string {
	switch {
	case s.opts.DataCentre != "":
		return s.opts.DataCentre
	case s.geoOrigin != "":
		return s.geoOrigin
	}
	return requestOrigin(r)
}

// geolocation is what token answers name: the Geolocation option verbatim, else the
// DataCentre or the request's origin, with the token path under GeolocationPath.
func (s *Sim) geolocation(r *http.Request) string {
	if s.opts.Geolocation != "" {
		return s.opts.Geolocation
	}
	g := s.opts.DataCentre
	if g == "" {
		g = requestOrigin(r)
	}
	if s.opts.GeolocationPath {
		g += tokenPath
	}
	return g
}

func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// originOf returns the scheme and host of an http or https URL; "" for "". A path is
// allowed only when withPath.
func originOf(raw string, withPath bool) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.User != nil:
		return "", errors.New("want an http or https URL with a host, such as https://us2.api.concursolutions.com")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("want no query or fragment")
	case !withPath && u.Path != "":
		return "", errors.New("want an origin, without a path")
	}
	return u.Scheme + "://" + u.Host, nil
}

// rightHost refuses API calls at GLZ, as Concur refuses a token on a host that did not
// issue it. It runs after authentication: a call without a token is 401 wherever it goes.
func (s *Sim) rightHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.atGLZ(r) {
			s.count(func(st *Stats) { st.WrongHostCalls++; st.Unauthorized++ })
			s.writeError(w, s.opts.RefusedStatus, "Invalid, expired or revoked access token.")
			return
		}
		next.ServeHTTP(w, r)
	})
}
