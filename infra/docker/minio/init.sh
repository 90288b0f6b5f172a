#!/bin/sh
# One-shot (minio-init): the lake bucket, a policy limited to that bucket, and the
# pipeline's own access key attached to it. The root user is used here and nowhere else.
# Idempotent: safe to run on every `docker compose up`.
set -eu

: "${MINIO_ENDPOINT:?MINIO_ENDPOINT is not set}"
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is not set}"
: "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD is not set}"
: "${LAKE_BUCKET:?LAKE_BUCKET is not set}"
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY is not set}"
: "${S3_SECRET_KEY:?S3_SECRET_KEY is not set}"
POLICY_NAME="${POLICY_NAME:-stocklake-pipeline}"
POLICY_FILE="${POLICY_FILE:-/tmp/stocklake-pipeline-policy.json}"

if [ "$S3_ACCESS_KEY" = "$MINIO_ROOT_USER" ]; then
  echo "minio-init: S3_ACCESS_KEY must differ from MINIO_ROOT_USER (the pipeline never uses root)" >&2
  exit 1
fi
if [ "${#S3_SECRET_KEY}" -lt 8 ]; then
  echo "minio-init: S3_SECRET_KEY needs at least 8 characters (MinIO's minimum)" >&2
  exit 1
fi

mc alias set stack "$MINIO_ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "stack/$LAKE_BUCKET"

# Objects of the lake bucket only: no other bucket, no bucket creation or deletion, no admin.
printf '%s\n' '{' \
  '  "Version": "2012-10-17",' \
  '  "Statement": [' \
  '    {' \
  '      "Sid": "LakeBucket",' \
  '      "Effect": "Allow",' \
  '      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],' \
  "      \"Resource\": [\"arn:aws:s3:::$LAKE_BUCKET\"]" \
  '    },' \
  '    {' \
  '      "Sid": "LakeObjects",' \
  '      "Effect": "Allow",' \
  '      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",' \
  '                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],' \
  "      \"Resource\": [\"arn:aws:s3:::$LAKE_BUCKET/*\"]" \
  '    }' \
  '  ]' \
  '}' > "$POLICY_FILE"

mc admin policy create stack "$POLICY_NAME" "$POLICY_FILE"
mc admin user add stack "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
# A second run finds the policy already attached; any other failure stops the job.
if ! output="$(mc admin policy attach stack "$POLICY_NAME" --user "$S3_ACCESS_KEY" 2>&1)"; then
  case "$output" in
    *"already in effect"* | *"already attached"*) ;;
    *) echo "$output" >&2; exit 1 ;;
  esac
fi
echo "minio-init: bucket '$LAKE_BUCKET' ready; key '$S3_ACCESS_KEY' limited to it by policy '$POLICY_NAME'"
