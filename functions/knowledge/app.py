"""Knowledge bases: POST/GET /knowledge/{kb}/documents, DELETE .../{document_id}, POST .../search."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from signoff import http, knowledge, runtime
from signoff.config import get_settings
from signoff.observability import logger, metrics, tracer

app = APIGatewayHttpResolver()
http.install_error_handlers(app, logger)


@app.post("/knowledge/<kb>/documents")
def add_document(kb: str) -> Response:
    settings = get_settings()
    event = app.current_event.raw_event
    result = knowledge.ingest(
        runtime.get_knowledge_store(),
        runtime.get_embedder(),
        kb,
        http.document_input(event, settings.knowledge_max_bytes),
        principal=http.caller(app.current_event.raw_event, get_settings()),
        writers=settings.knowledge_writers,
        queue=runtime.get_queue(),  # looked up per call: `make dev` swaps in its local queue
        queue_above=settings.knowledge_queue_chunks,
        deadline=http.deadline(app.lambda_context, settings.api_timeout_ms, settings.deadline_margin_ms),
    )
    logger.info("document %s", result.outcome, extra={"kb": kb, "document_id": result.document.document_id})
    metrics.add_metric(name=f"KnowledgeDocuments{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    return http.ingest_response(result)


@app.get("/knowledge/<kb>/documents")
def list_documents(kb: str) -> Response:
    page, limit = http.paging(app.current_event.query_string_parameters or {})
    documents = knowledge.list_documents(runtime.get_knowledge_store(), kb, page=page, limit=limit)
    return http.json_response(http.documents_page(documents, page, limit))


@app.delete("/knowledge/<kb>/documents/<document_id>")
def delete_document(kb: str, document_id: str) -> Response:
    knowledge.delete(
        runtime.get_knowledge_store(),
        kb,
        document_id,
        principal=http.caller(app.current_event.raw_event, get_settings()),
        writers=get_settings().knowledge_writers,
    )
    return http.json_response({"kb": kb, "document_id": document_id, "deleted": True})


@app.post("/knowledge/<kb>/search")
def search(kb: str) -> Response:
    settings = get_settings()
    query, limit, filters = http.search_input(app.current_event.raw_event, settings.max_body_bytes)
    hits = knowledge.search(
        runtime.get_knowledge_store(),
        runtime.get_embedder(),
        kb,
        query,
        limit=limit,
        filters=filters,
        deadline=http.deadline(app.lambda_context, settings.api_timeout_ms, settings.deadline_margin_ms),
    )
    metrics.add_metric(name="KnowledgeSearches", unit=MetricUnit.Count, value=1)
    return http.json_response({"kb": kb, "query": query, "results": [http.hit_object(h) for h in hits]})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)
