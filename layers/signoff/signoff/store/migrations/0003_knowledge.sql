-- Knowledge search: documents per knowledge base, their chunks with pgvector embeddings (HNSW,
-- cosine), and large uploads waiting for the resume worker.
--
-- HNSW needs one fixed size per column. It is SIGNOFF_EMBEDDING_DIMENSIONS when this migration
-- runs (apply_migrations sets signoff.embedding_dimensions; 1536, text-embedding-3-small's size,
-- when unset). Changing the setting afterwards needs a re-index: see the README.

CREATE TABLE knowledge_documents (
    kb              text NOT NULL,
    document_id     text NOT NULL,
    title           text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- sha256 of the text, the chunking and the embedding model: an unchanged re-post is a no-op.
    content_digest  text NOT NULL,
    chunk_count     integer NOT NULL,
    embedding_model text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kb, document_id)
);

DO $migration$
DECLARE
    dimensions integer := coalesce(
        nullif(current_setting('signoff.embedding_dimensions', true), '')::integer, 1536);
BEGIN
    EXECUTE format($sql$
        CREATE TABLE knowledge_chunks (
            kb          text NOT NULL,
            document_id text NOT NULL,
            chunk_index integer NOT NULL,
            content     text NOT NULL,
            -- the document's metadata plus this chunk's heading path ("headings")
            metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
            embedding   vector(%s) NOT NULL,
            PRIMARY KEY (kb, document_id, chunk_index),
            FOREIGN KEY (kb, document_id) REFERENCES knowledge_documents (kb, document_id)
                ON DELETE CASCADE
        )$sql$, dimensions);
END
$migration$;

CREATE INDEX knowledge_chunks_embedding_idx ON knowledge_chunks
    USING hnsw (embedding vector_cosine_ops);
CREATE INDEX knowledge_chunks_metadata_idx ON knowledge_chunks USING gin (metadata jsonb_path_ops);

-- One pending upload per document (a newer upload replaces an older one); the text lives here,
-- not in the queue message. The worker deletes the row in the transaction that ingests it.
CREATE TABLE knowledge_uploads (
    kb          text NOT NULL,
    document_id text NOT NULL,
    upload_id   text NOT NULL,
    title       text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    format      text NOT NULL CHECK (format IN ('markdown', 'text')),
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kb, document_id)
);
