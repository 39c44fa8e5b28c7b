"""
The baseline of the API bench: the training endpoints written the way the original
service was, FastAPI + SQLAlchemy 2.x (sync ORM session per request, the FastAPI docs'
pattern) + a pydantic response model, served by one uvicorn worker process.

It reads and writes the very table Kiln uses (`training_tasks`, same file or same Postgres
schema), checks an HS256 JWT as Kiln does, and answers the same JSON shape.

Env: BASELINE_DATABASE_URL (sqlite:///path or postgres://...?options=-c%20search_path%3D...),
BASELINE_JWT_SECRET, BASELINE_DATA_DIR. Run: python fastapi_app.py --port N
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, Integer, Text, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

DATABASE_URL = os.environ["BASELINE_DATABASE_URL"]
JWT_SECRET = os.environ["BASELINE_JWT_SECRET"]
DATA_DIR = os.environ.get("BASELINE_DATA_DIR", "./data")
ADMIN_SCOPE = "training:admin"


# --- database -------------------------------------------------------------------------


def make_engine(url: str):
    if url.startswith("sqlite"):
        # The FastAPI tutorial's SQLite setup: sessions cross threads of the threadpool.
        return create_engine(url, connect_args={"check_same_thread": False})
    if url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url[len("postgres://") :]
    return create_engine(url)


engine = make_engine(DATABASE_URL)
SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=True)


class JSONText(TypeDecorator):
    """The table keeps JSON as text (both dialects); the ORM hands out Python lists."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> str | None:
        return None if value is None else json.dumps(value)

    def process_result_value(self, value: str | None, dialect) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    pass


def iso_now() -> str:
    """The table's timestamp format: ISO-8601 UTC, milliseconds, Z (it sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrainingTaskModel(Base):
    __tablename__ = "training_tasks"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(Text)
    origin_instance: Mapped[str] = mapped_column(Text, default="unknown")
    origin_zone: Mapped[str | None] = mapped_column(Text)
    origin_version: Mapped[str | None] = mapped_column(Text)
    origin_tenant_id: Mapped[str | None] = mapped_column(Text)
    training_type: Mapped[str] = mapped_column(Text, default="LORA")
    entity_type: Mapped[str] = mapped_column(Text, default="PRODUCT")
    entity_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="PENDING")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=1000)
    eta_seconds: Mapped[int | None] = mapped_column(Integer)
    trigger_word: Mapped[str] = mapped_column(Text)
    training_folder: Mapped[str] = mapped_column(Text, default="")
    rank: Mapped[int] = mapped_column(Integer, default=16)
    save_every: Mapped[int] = mapped_column(Integer, default=2000)
    max_step_saves_to_keep: Mapped[int] = mapped_column(Integer, default=4)
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    steps: Mapped[int] = mapped_column(Integer, default=1000)
    learning_rate: Mapped[float] = mapped_column(Float, default=0.0001)
    gradient_accumulation: Mapped[int] = mapped_column(Integer, default=1)
    optimizer: Mapped[str] = mapped_column(Text, default="adamw8bit")
    # An integer column in the shared table; pydantic turns 0/1 into the API's boolean.
    bypass_guidance_embedding: Mapped[int] = mapped_column(Integer, default=0)
    base_model_path: Mapped[str] = mapped_column(Text, default="black-forest-labs/FLUX.1-dev")
    local_model_path: Mapped[str | None] = mapped_column(Text)
    sample_every: Mapped[int] = mapped_column(Integer, default=250)
    sample_steps: Mapped[int] = mapped_column(Integer, default=25)
    sample_prompts: Mapped[list] = mapped_column(JSONText, default=list)
    started_at: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[str | None] = mapped_column(Text)
    logs: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str] = mapped_column(Text, default="")
    celery_training_task_id: Mapped[str | None] = mapped_column(Text)
    celery_preprocessing_task_id: Mapped[str | None] = mapped_column(Text)
    celery_chain_task_id: Mapped[str | None] = mapped_column(Text)
    preprocessing_stage: Mapped[str | None] = mapped_column(Text)
    processed_files_count: Mapped[int | None] = mapped_column(Integer)
    total_files_count: Mapped[int | None] = mapped_column(Integer)
    preprocessing_started_at: Mapped[str | None] = mapped_column(Text)
    preprocessing_completed_at: Mapped[str | None] = mapped_column(Text)
    source_images: Mapped[list] = mapped_column(JSONText, default=list)
    processed_dataset_path: Mapped[str | None] = mapped_column(Text)
    preprocessing_transforms: Mapped[list | None] = mapped_column(JSONText)
    preprocessing_captioning_strategy: Mapped[str] = mapped_column(Text, default="trigger_only")
    preprocessing_captioning_prompt: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    priority_changed_at: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[str] = mapped_column(Text)


def get_db() -> Iterator[Session]:
    with SessionLocal() as db:
        yield db


# --- auth -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    tenant_id: str | None
    admin: bool


bearer = HTTPBearer()


def current_principal(creds: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> Principal:
    try:
        claims = jwt.decode(creds.credentials, JWT_SECRET, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    scopes = str(claims.get("scope", "")).split()
    return Principal(tenant_id=claims.get("tenant_id") or None, admin=ADMIN_SCOPE in scopes)


def scoped(stmt, principal: Principal):
    """A tenant sees its own tasks; an admin sees all."""
    if principal.admin:
        return stmt
    if principal.tenant_id is None:
        return stmt.where(TrainingTaskModel.origin_tenant_id.is_(None))
    return stmt.where(TrainingTaskModel.origin_tenant_id == principal.tenant_id)


# --- schemas --------------------------------------------------------------------------

TrainingType = Literal["LORA", "FULL"]
EntityType = Literal["PRODUCT", "SUBJECT", "STYLE"]
TrainingStatus = Literal["PENDING", "PREPROCESSING", "QUEUED", "TRAINING", "COMPLETED", "FAILED", "CANCELLED"]
CaptioningStrategy = Literal["trigger_only", "template", "provided", "vlm"]


class TrainingTaskCreate(BaseModel):
    training_type: TrainingType = "LORA"
    entity_type: EntityType = "PRODUCT"
    entity_id: uuid.UUID | None = None
    trigger_word: str = Field(min_length=1, max_length=64)
    rank: int | None = Field(16, ge=1, le=256)
    steps: int | None = Field(1000, ge=1, le=100000)
    learning_rate: float | None = Field(0.0001, gt=0, le=1)
    sample_prompts: list[str] | None = None
    source_images: list[str] | None = None
    base_model_path: str | None = None
    bypass_guidance_embedding: bool | None = False
    webhook_url: str | None = None
    origin_instance: str | None = "unknown"
    origin_zone: str | None = None
    origin_version: str | None = None
    origin_tenant_id: str | None = None
    preprocessing_transforms: list[dict[str, Any]] | None = None
    preprocessing_captioning_strategy: CaptioningStrategy | None = "trigger_only"
    preprocessing_captioning_prompt: str | None = None
    save_every: int = Field(2000, ge=1)
    max_step_saves_to_keep: int = Field(4, ge=1, le=100)
    batch_size: int = Field(1, ge=1, le=64)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    optimizer: Literal["adamw8bit", "adamw", "adafactor", "prodigy"] = "adamw8bit"
    sample_every: int = Field(250, ge=1)
    sample_steps: int = Field(25, ge=1, le=200)
    priority: int = Field(1, ge=0, le=3)


class TrainingTask(BaseModel):
    """The response, field for field as Kiln's TrainingTask."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    origin_instance: str = "unknown"
    origin_zone: str | None = None
    origin_version: str | None = None
    origin_tenant_id: str | None = None
    training_type: TrainingType = "LORA"
    entity_type: EntityType = "PRODUCT"
    entity_id: uuid.UUID | None = None
    status: TrainingStatus = "PENDING"
    progress: float = 0.0
    current_step: int = 0
    total_steps: int = 1000
    eta_seconds: int | None = None
    trigger_word: str
    training_folder: str = ""
    rank: int = 16
    save_every: int = 2000
    max_step_saves_to_keep: int = 4
    batch_size: int = 1
    steps: int = 1000
    learning_rate: float = 0.0001
    gradient_accumulation: int = 1
    optimizer: str = "adamw8bit"
    bypass_guidance_embedding: bool = False
    base_model_path: str = "black-forest-labs/FLUX.1-dev"
    local_model_path: str | None = None
    sample_every: int = 250
    sample_steps: int = 25
    sample_prompts: list[str] = []
    started_at: datetime | None = None
    completed_at: datetime | None = None
    logs: str = ""
    error_message: str | None = None
    webhook_url: str = ""
    celery_training_task_id: str | None = None
    celery_preprocessing_task_id: str | None = None
    celery_chain_task_id: str | None = None
    preprocessing_stage: str | None = None
    processed_files_count: int | None = None
    total_files_count: int | None = None
    preprocessing_started_at: datetime | None = None
    preprocessing_completed_at: datetime | None = None
    source_images: list[str] = []
    processed_dataset_path: str | None = None
    preprocessing_transforms: list[dict[str, Any]] | None = None
    preprocessing_captioning_strategy: str = "trigger_only"
    preprocessing_captioning_prompt: str | None = None
    priority: int = 1
    priority_changed_at: datetime | None = None
    attempt: int = 0


# --- routes ---------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/training", tags=["Training"])
DbSession = Annotated[Session, Depends(get_db)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@router.post("/", response_model=TrainingTask, status_code=status.HTTP_201_CREATED)
def create_training_task(body: TrainingTaskCreate, db: DbSession, principal: CurrentPrincipal):
    if body.priority != 1 and not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Setting priority needs the training:admin scope")
    task_id = str(uuid.uuid4())
    now = iso_now()
    tenant = body.origin_tenant_id if principal.admin and body.origin_tenant_id else principal.tenant_id
    task = TrainingTaskModel(
        id=task_id,
        created_at=now,
        updated_at=now,
        queued_at=now,
        origin_instance=body.origin_instance or "unknown",
        origin_zone=body.origin_zone,
        origin_version=body.origin_version,
        origin_tenant_id=tenant,
        training_type=body.training_type,
        entity_type=body.entity_type,
        entity_id=str(body.entity_id) if body.entity_id else None,
        status="PENDING",
        total_steps=body.steps or 1000,
        trigger_word=body.trigger_word,
        training_folder=os.path.join(DATA_DIR, "tasks", task_id),
        rank=body.rank or 16,
        save_every=body.save_every,
        max_step_saves_to_keep=body.max_step_saves_to_keep,
        batch_size=body.batch_size,
        steps=body.steps or 1000,
        learning_rate=body.learning_rate or 0.0001,
        gradient_accumulation=body.gradient_accumulation,
        optimizer=body.optimizer,
        bypass_guidance_embedding=1 if body.bypass_guidance_embedding else 0,
        base_model_path=body.base_model_path or "black-forest-labs/FLUX.1-dev",
        sample_every=body.sample_every,
        sample_steps=body.sample_steps,
        sample_prompts=body.sample_prompts or [],
        webhook_url=body.webhook_url or "",
        celery_chain_task_id=task_id,
        source_images=body.source_images or [],
        preprocessing_transforms=body.preprocessing_transforms,
        preprocessing_captioning_strategy=body.preprocessing_captioning_strategy or "trigger_only",
        preprocessing_captioning_prompt=body.preprocessing_captioning_prompt,
        priority=body.priority,
    )
    db.add(task)
    db.commit()
    db.refresh(task)
    return task


@router.get("/", response_model=list[TrainingTask])
def list_training_tasks(
    db: DbSession,
    principal: CurrentPrincipal,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    status_: Annotated[TrainingStatus | None, Query(alias="status")] = None,
    entity_id: uuid.UUID | None = None,
):
    stmt = scoped(select(TrainingTaskModel), principal)
    if status_:
        stmt = stmt.where(TrainingTaskModel.status == status_)
    if entity_id:
        stmt = stmt.where(TrainingTaskModel.entity_id == str(entity_id))
    stmt = stmt.order_by(TrainingTaskModel.created_at.desc(), TrainingTaskModel.id.desc()).offset(skip).limit(limit)
    return db.scalars(stmt).all()


@router.get("/{task_id}", response_model=TrainingTask)
def get_training_status(task_id: uuid.UUID, db: DbSession, principal: CurrentPrincipal):
    stmt = scoped(select(TrainingTaskModel).where(TrainingTaskModel.id == str(task_id)), principal)
    task = db.scalars(stmt).first()
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Training task not found")
    return task


app = FastAPI(title="Training API (baseline)")
app.include_router(router)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # One worker process, as the original ran one process per core; no access log, like Kiln's.
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)
