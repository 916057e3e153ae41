#!/usr/bin/env python3
"""Writes ../openapi.json, the OpenAPI 3.1 document of the HTTP edge.

Run from internal/api: python3 gen/openapi.py. The document is checked against
real requests and responses by test/api (kin-openapi's openapi3filter).
"""
import json, os

def ref(n): return {"$ref": "#/components/schemas/" + n}
S = lambda **k: dict(k)
string = {"type": "string"}
uuid = {"type": "string", "format": "uuid"}
num = {"type": "number"}
integer = {"type": "integer"}
boolean = {"type": "boolean"}
dt = {"type": "string", "format": "date-time"}
binary = {"type": "string", "format": "binary"}
img_str = {"type": "string", "description": "the image as base64 (standard or URL-safe, padding optional) or as a data URL: data:image/jpeg;base64,…"}

schemas = {
  "Problem": S(type="object", required=["type", "title", "status", "code"], description="RFC 9457 problem document (application/problem+json).", properties={
    "type": string, "title": string, "status": integer, "detail": string, "instance": string,
    "code": {"type": "string", "description": "stable machine-readable code", "enum": [
      "unauthorized", "forbidden", "not_found", "method_not_allowed", "rate_limited", "body_too_large", "image_too_large",
      "malformed_json", "unsupported_media_type", "invalid_request", "invalid_image", "no_face", "model_mismatch",
      "timeout", "unavailable", "overloaded", "internal"]},
    "reason": {"type": "string", "description": "the image's reject reason (events.RejectReason): empty, unsupported_format, too_large, too_many_pixels, decompression_bomb, truncated, corrupt, no_face, erased (the image was erased while it was analysed: 404 not_found), …"},
    "retry_after": {"type": "integer", "description": "seconds to wait before trying again (rate_limited, overloaded); also the Retry-After header"}}),
  "Options": S(type="object", additionalProperties=False, properties={"max_faces": integer, "min_face_size": integer, "skip_cache": boolean}),
  "Box": S(type="array", items=num, minItems=4, maxItems=4, description="[x1, y1, x2, y2] in pixels of the upright image"),
  "Landmarks": S(type="array", items=S(type="array", items=num, minItems=2, maxItems=2), minItems=5, maxItems=5),
  "Gender": S(type="object", properties={"label": string, "score": num}),
  "Emotion": S(type="object", properties={"label": string, "score": num, "probabilities": S(type="object", additionalProperties=num)}),
  "Pose": S(type="object", properties={"yaw": num, "pitch": num, "roll": num}),
  "Quality": S(type="object", properties={"sharpness": num, "brightness": num, "face_size": num, "det_score": num, "usable": boolean, "reason": string}),
  "Match": S(type="object", properties={"subject_id": string, "subject_name": string, "similarity": num, "threshold": num}),
  "Face": S(type="object", required=["id", "index", "box", "landmarks", "score"], properties={
    "id": string, "index": integer, "box": ref("Box"), "landmarks": ref("Landmarks"), "score": num, "age": num,
    "gender": ref("Gender"), "emotion": ref("Emotion"), "pose": ref("Pose"), "quality": ref("Quality"),
    "subject_id": string, "match": ref("Match")}),
  "Image": S(type="object", required=["id", "status", "face_count", "faces"], properties={
    "id": string, "status": {"type": "string", "enum": ["accepted", "analyzed", "rejected"]},
    "reject_reason": string, "reject_message": string, "width": integer, "height": integer, "sha256": string,
    "model_pack": string, "face_count": integer, "cached": boolean, "submitted_at": dt, "analyzed_at": dt,
    "faces": S(type="array", items=ref("Face"))}),
  "Accepted": S(type="object", required=["id", "status", "location"], properties={"id": uuid, "status": string, "location": string}),
  "ComparedFace": S(type="object", required=["image_id", "face_id", "box"], properties={"image_id": string, "face_id": string, "box": ref("Box")}),
  "CompareResult": S(type="object", required=["similarity", "threshold", "verdict", "same", "model", "faces"], properties={
    "similarity": num, "threshold": num, "verdict": {"type": "string", "enum": ["same", "different"]}, "same": boolean,
    "model": string, "faces": S(type="array", items=ref("ComparedFace"), minItems=2, maxItems=2)}),
  "SearchHit": S(type="object", required=["face_id", "image_id", "similarity", "box", "source", "submitted_at"], properties={
    "face_id": string, "image_id": string, "subject_id": string, "similarity": num, "box": ref("Box"), "source": string, "submitted_at": dt}),
  "SearchResult": S(type="object", required=["query", "model", "threshold", "hits"], properties={
    "query": ref("ComparedFace"), "model": string, "threshold": num, "hits": S(type="array", items=ref("SearchHit"))}),
  "BatchItem": S(type="object", required=["index"], properties={"index": integer, "result": ref("Image"), "error": ref("Problem")}),
  "BatchResult": S(type="object", required=["items", "faces", "matrix", "threshold", "model"], properties={
    "items": S(type="array", items=ref("BatchItem")),
    "faces": S(type="array", description="the largest face of each image that has one, in image order: the rows and columns of matrix",
               items=S(type="object", required=["image", "face_id"], properties={"image": integer, "face_id": string})),
    "matrix": S(type="array", description="matrix[i][j]: cosine similarity of faces[i] and faces[j]", items=S(type="array", items=num)),
    "threshold": num, "model": string}),
  "Subject": S(type="object", required=["id", "name", "metadata", "face_count", "created_at"], properties={
    "id": uuid, "name": string, "metadata": S(type="object"), "face_count": integer, "created_at": dt}),
  "SubjectList": S(type="object", required=["subjects"], properties={"subjects": S(type="array", items=ref("Subject"))}),
  "Enrolled": S(type="object", required=["subject_id", "face_id", "image_id"], properties={"subject_id": string, "face_id": string, "image_id": string, "box": ref("Box")}),
  "Candidate": S(type="object", required=["subject_id", "name", "similarity", "face_id"], properties={"subject_id": string, "name": string, "similarity": num, "face_id": string}),
  "IdentifyResult": S(type="object", required=["result", "threshold", "query", "candidates"], properties={
    "result": {"type": "string", "enum": ["match", "unknown"]},
    "subject": {"oneOf": [ref("Candidate"), {"type": "null"}]},
    "threshold": num, "query": ref("ComparedFace"), "candidates": S(type="array", items=ref("Candidate"))}),
  "Status": S(type="object", required=["status"], properties={"status": string}),
  # request bodies
  "ImageRequest": S(type="object", additionalProperties=False, properties={"image": img_str, "options": ref("Options")}),
  "ImageUpload": S(type="object", properties={"image": binary, "options": ref("Options")}),
  "CompareRequest": S(type="object", additionalProperties=False, properties={
    "images": S(type="array", items=img_str, minItems=2, maxItems=2), "face_ids": S(type="array", items=string, minItems=2, maxItems=2)}),
  "ImagesUpload": S(type="object", properties={"images": S(type="array", items=binary)}),
  "Filters": S(type="object", additionalProperties=False, properties={"subject_id": string, "enrolled_only": boolean, "from": dt, "to": dt, "source": string}),
  "SearchRequest": S(type="object", additionalProperties=False, properties={
    "image": img_str, "face_id": string, "k": S(type="integer", minimum=1, maximum=100), "min_similarity": num, "filters": ref("Filters")}),
  "BatchRequest": S(type="object", additionalProperties=False, properties={"images": S(type="array", items=img_str, minItems=1), "options": ref("Options")}),
  "SubjectRequest": S(type="object", additionalProperties=False, properties={"name": string, "metadata": S(type="object")}),
  "EnrollRequest": S(type="object", additionalProperties=False, properties={"face_id": string, "image": img_str}),
  "IdentifyRequest": S(type="object", additionalProperties=False, properties={"image": img_str, "face_id": string, "k": S(type="integer", minimum=1, maximum=100)}),
}

def body(json_schema, multipart=None, raw=False):
  c = {"application/json": {"schema": ref(json_schema)}}
  if multipart:
    c["multipart/form-data"] = {"schema": ref(multipart)}
  if raw:
    c["application/octet-stream"] = {"schema": binary}
    c["image/*"] = {"schema": binary}
  return {"required": True, "content": c}

def ok(code, schema, desc, headers=None):
  r = {"description": desc}
  if schema:
    r["content"] = {"application/json": {"schema": ref(schema)}}
  if headers:
    r["headers"] = headers
  return {str(code): r, "default": {"$ref": "#/components/responses/Problem"}}

def submits(resp):
  """The responses of an endpoint that submits images to the pipeline: also 503 overloaded."""
  return dict(resp, **{"503": {"$ref": "#/components/responses/Overloaded"}})

idp = [{"name": "id", "in": "path", "required": True, "schema": uuid}]
def op(opid, summary, scope, resp, req=None, params=None, tags=None):
  o = {"operationId": opid, "summary": summary, "description": "Needs scope **%s**." % scope if scope else "", "responses": resp}
  if req: o["requestBody"] = req
  if params: o["parameters"] = params
  if tags: o["tags"] = tags
  if not scope: o["security"] = []
  return o

paths = {
  "/v1/images": {"post": op("submitImage", "Submit an image for asynchronous analysis", "write",
      submits(ok(202, "Accepted", "accepted: poll the Location", {"Location": {"schema": string}})), body("ImageRequest", "ImageUpload", raw=True))},
  "/v1/images/{id}": {"parameters": idp,
      "get": op("getImage", "An image's status and stored results", "read", ok(200, "Image", "the image")),
      "delete": op("eraseImage", "Erase an image for good (rows, payloads, crops, cache, stored results, dead letters); an image still in the pipeline is never stored again; erasing it again removes any copy made since", "admin", ok(204, None, "erased"))},
  "/v1/analyze": {"post": op("analyze", "Analyse an image and wait for the result", "write", submits(ok(200, "Image", "the analysis")), body("ImageRequest", "ImageUpload", raw=True))},
  "/v1/compare": {"post": op("compare", "1:1 — two images (their largest faces) or two face ids", "write", submits(ok(200, "CompareResult", "the comparison")), body("CompareRequest", "ImagesUpload"))},
  "/v1/search": {"post": op("search", "Top-k similar faces of the tenant", "write", submits(ok(200, "SearchResult", "the hits")), body("SearchRequest", "ImageUpload"))},
  "/v1/batch": {"post": op("batch", "N images: per-image results and the similarity matrix of their largest faces", "write", submits(ok(200, "BatchResult", "the batch")), body("BatchRequest", "ImagesUpload"))},
  "/v1/subjects": {
      "post": op("createSubject", "Create a subject", "write", ok(201, "Subject", "created", {"Location": {"schema": string}}), body("SubjectRequest")),
      "get": op("listSubjects", "List subjects", "read", ok(200, "SubjectList", "the subjects"), params=[
        {"name": "name", "in": "query", "schema": string}, {"name": "limit", "in": "query", "schema": S(type="integer", minimum=1, maximum=1000)},
        {"name": "offset", "in": "query", "schema": S(type="integer", minimum=0)}])},
  "/v1/subjects/identify": {"post": op("identify", "1:N identification against enrolled subjects (\"unknown\" below the threshold)", "write", submits(ok(200, "IdentifyResult", "the answer")), body("IdentifyRequest", "ImageUpload"))},
  "/v1/subjects/{id}": {"parameters": idp,
      "get": op("getSubject", "A subject", "read", ok(200, "Subject", "the subject")),
      "patch": op("renameSubject", "Rename a subject or replace its metadata", "write", ok(200, "Subject", "the subject"), body("SubjectRequest")),
      "delete": op("eraseSubject", "Erase a subject with its reference faces", "admin", ok(204, None, "erased"))},
  "/v1/subjects/{id}/faces": {"parameters": idp,
      "post": op("enroll", "Enrol a face (by id, or the best face of an uploaded image)", "write", submits(ok(201, "Enrolled", "enrolled")), body("EnrollRequest", "ImageUpload"))},
  "/healthz": {"get": op("healthz", "Liveness", None, ok(200, "Status", "alive"))},
  "/readyz": {"get": op("readyz", "Readiness: NATS, PostgreSQL, models", None, ok(200, "Status", "ready"))},
  "/metrics": {"get": op("metrics", "Prometheus metrics", None, {"200": {"description": "metrics", "content": {"text/plain": {"schema": string}}}})},
  "/openapi.json": {"get": op("openapi", "This document", None, {"200": {"description": "the document", "content": {"application/json": {"schema": {"type": "object"}}}}})},
}

doc = {
  "openapi": "3.1.0",
  "info": {"title": "facestream HTTP API", "version": "1.0.0",
           "description": "Face analysis over a streaming pipeline. See docs/api.md. Every /v1 request needs an API key (Authorization: Bearer fs_… or X-API-Key); every id is scoped to the key's tenant. Errors are application/problem+json.",
           "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}, {"apiKey": []}],
  "paths": paths,
  "components": {
    "schemas": schemas,
    "responses": {"Problem": {"description": "an error (RFC 9457)", "headers": {"Retry-After": {"schema": integer}},
                              "content": {"application/problem+json": {"schema": ref("Problem")}}},
                  "Overloaded": {"description": "code overloaded: the pipeline's work queue is above its high-water mark or full, the image was not taken on; send it again after Retry-After seconds (always set for overloaded). Also code unavailable: a dependency (the key store) cannot be reached.",
                                 "headers": {"Retry-After": {"description": "seconds to wait", "schema": S(type="integer", minimum=1)}},
                                 "content": {"application/problem+json": {"schema": ref("Problem")}}}},
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "fs_<prefix>_<secret>"},
                        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
  },
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "openapi.json"), "w") as f:
  json.dump(doc, f, indent=1)
  f.write("\n")
