package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/facestream/facestream/internal/api"
)

// TestOpenAPIValidatorCatchesDrift proves that the validation TestAPI relies
// on is not vacuous: a response or a request that breaks openapi.json is
// reported.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %s", doc.OpenAPI)
	}
	doc.Servers = openapi3.Servers{{URL: "http://x"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://x/v1/images/0a4f3e5c-7d2b-4c1a-9e8f-1b2c3d4e5f60", nil)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	check := func(status int, ct, body string) error {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status,
			Header: http.Header{"Content-Type": {ct}}, Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes([]byte(body))
		return openapi3filter.ValidateResponse(ctx, out)
	}
	if err := check(200, "application/json", `{"id":"a","status":"analyzed","face_count":0,"faces":[]}`); err != nil {
		t.Errorf("a valid image: %v", err)
	}
	if err := check(200, "application/json", `{"id":"a","status":"analyzed","face_count":0}`); err == nil {
		t.Error("an image without faces passed")
	}
	if err := check(200, "application/json", `{"id":"a","status":"lost","face_count":0,"faces":[]}`); err == nil {
		t.Error("an unknown status passed")
	}
	if err := check(404, "application/problem+json", `{"type":"t","title":"x","status":404}`); err == nil {
		t.Error("a problem without code passed")
	}
	post, _ := http.NewRequest(http.MethodPost, "http://x/v1/compare", bytes.NewReader([]byte(`{"images":["a"],"extra":1}`)))
	post.Header.Set("Content-Type", "application/json")
	route, params, err = router.FindRoute(post)
	if err != nil {
		t.Fatal(err)
	}
	post.Body = io.NopCloser(bytes.NewReader([]byte(`{"images":["a"],"extra":1}`)))
	if err := openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{Request: post, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}); err == nil {
		t.Error("a compare request with one image and an unknown field passed")
	}
}
