package httpapi

import "strings"

// AdminRoute is one route of the admin API as its tests walk them.
type AdminRoute struct {
	Method, Path string // Path under /admin/realms/{realm}, with its {placeholders}
	Acting       bool
	Action       string
}

// AdminRoutes lists every admin route from the table the server registers.
func AdminRoutes() []AdminRoute {
	var out []AdminRoute
	for _, rt := range adminRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out = append(out, AdminRoute{Method: method, Path: adminPrefix + path, Acting: rt.acting, Action: rt.action})
	}
	return out
}
