"""The catalog API's bodies, as pydantic models (requests validated, responses documented)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Origin = Literal["feed", "events"]


class ProductIn(BaseModel):
    """A product as an admin states it: it replaces the stored one and counts as the feed."""

    model_config = ConfigDict(extra="forbid")

    sku: str | None = None
    name: str | None = Field(None, examples=["Everyday Runner"])
    price: float | str | None = Field(
        None, description='An amount: 19.99, "19.99 USD", "$19.99" or "19,99 €"'
    )
    sale_price: float | str | None = None
    currency: str | None = Field(None, description="ISO 4217 code", examples=["USD"])
    image_url: str | None = Field(None, description="http(s) URL, or a path on tidings (/demo/…)")
    url: str | None = Field(None, description="The product page: http(s) URL or a path")
    category: str | None = None
    brand: str | None = None
    in_stock: bool | str | None = Field(
        None, description='true/false, or availability text such as "in stock", "preorder"'
    )
    extra: dict[str, Any] | None = Field(None, description="Any other attributes")


class ProductOut(BaseModel):
    product_id: str
    sku: str | None
    name: str | None
    price: float | None
    sale_price: float | None
    currency: str | None
    image_url: str | None
    url: str | None
    category: str | None
    brand: str | None
    in_stock: bool | None
    source: Origin = Field(
        ..., description="feed: the feed (or an admin) defined the product; events: only learned"
    )
    origins: dict[str, Origin] = Field(
        ..., description="Each field with a value → where the value came from (the feed wins)"
    )
    views: int = Field(..., description="How often events showed the product (popularity)")
    extra: dict[str, Any]
    created_at: str
    updated_at: str


class PageCursor(BaseModel):
    has_more: bool
    next: str | None = Field(..., description="Pass as `cursor` for the next page")


class ProductPage(BaseModel):
    data: list[ProductOut]
    cursor: PageCursor


class ImportIssue(BaseModel):
    line: int | None = Field(..., description="Line the row starts on (CSV, JSON Lines)")
    index: int | None = Field(..., description="Position of the row among the records, from 0")
    product_id: str | None
    field: str | None
    code: str
    message: str


class ImportSummaryOut(BaseModel):
    format: Literal["csv", "json"]
    rows: int = Field(..., description="Rows read (blank ones not counted)")
    inserted: int
    updated: int
    rejected: int = Field(..., description="Rows refused; each problem is in `issues`")
    issue_count: int
    issues: list[ImportIssue] = Field(..., description="The first 1000 problems")
    seconds: float


class DeletedOut(BaseModel):
    product_id: str
    deleted: Literal[True] = True
