/** The preprocessing stage's public API; the engine and the API import only from here. */
export {
  PreprocessError,
  type CaptionStrategy,
  type EntityType,
  type Issue,
  type PreprocessHooks,
  type PreprocessJob,
  type PreprocessOptions,
  type PreprocessResult,
  type PreprocessStage,
  type TransformSpec,
  type ZipLimits,
} from './types.js';
export { runPreprocessing } from './run.js';
export { validateCaptioning, validateSourceSyntax, validateTransforms, validateUploadsExist } from './validate-request.js';
export { deleteUpload, openUpload, saveUpload, sweepUploads, uploadExpiry, UploadNotFoundError, UploadTooLargeError, type StoredUpload } from './uploads.js';
export { RASTER_FORMATS } from './inspect.js';
export { UPLOAD_ID } from './sources.js';
