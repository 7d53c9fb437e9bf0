// Kept so existing imports compile; the sizer lives in ./sizer/ (docs/architecture.md, "The wave sizer").
export * from "./sizer/index.ts";
