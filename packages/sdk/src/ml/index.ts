/**
 * `@aiwebtest/runbooks/ml` — the model side of the operations manual (Runbooks 10 and 11): the MLflow model
 * registry (read the champion, roll back, promote, legacy stages), Airflow DAG runs (retraining), data drift
 * (PSI, Kolmogorov–Smirnov, chi-square) and concept drift over samples read with SQL, and the A/B traffic split.
 *
 * @module \@aiwebtest/runbooks/ml
 */

export {
  AbTrafficSplitOptions,
  type AbTrafficSplitOptionsInput,
  abTrafficSplit,
} from './ab/ab-traffic-split';
export {
  AirflowClient,
  AirflowOptions,
  type AirflowOptionsInput,
  connectAirflow,
  type DagRun,
  type DagRunState,
  type TriggerRequest,
} from './airflow/client';
export {
  AirflowTriggerOptions,
  type AirflowTriggerOptionsInput,
  type AirflowTriggerParams,
  type AirflowTriggerResult,
  airflowTrigger,
  DagId,
  runIdFor,
} from './airflow/trigger-dag';
export {
  type WaitForDagRunData,
  WaitForDagRunOptions,
  type WaitForDagRunOptionsInput,
  waitForDagRun,
} from './airflow/wait-for-dag-run';
export {
  type ConceptDriftData,
  type ConceptDriftObservation,
  ConceptDriftOptions,
  type ConceptDriftOptionsInput,
  conceptDrift,
  type WindowAccuracy,
} from './drift/concept-drift';
export {
  type DataDriftData,
  type DataDriftObservation,
  DataDriftOptions,
  type DataDriftOptionsInput,
  DEFAULT_DRIFT_THRESHOLDS,
  DriftFeature,
  DriftMethod,
  dataDrift,
  type FeatureDrift,
  type FeatureMeasure,
} from './drift/data-drift';
export { chiSquareSurvival, kolmogorovSurvival } from './drift/distributions';
export { type SampleSource, SqlQuery } from './drift/sample-source';
export {
  type ChiSquareResult,
  chiSquareTest,
  type KsResult,
  ksTest,
  type PsiOptions,
  type PsiResult,
  psi,
} from './drift/statistics';
export { isMlServiceError, type MlService, MlServiceError } from './errors';
export {
  type AliasMoveParams,
  type AliasMoveResult,
  ModelPromoteOptions,
  type ModelPromoteOptionsInput,
  ModelRollbackOptions,
  type ModelRollbackOptionsInput,
  modelPromote,
  modelRollback,
} from './mlflow/alias-move';
export {
  type ModelChampionData,
  type ModelChampionObservation,
  ModelChampionOptions,
  type ModelChampionOptionsInput,
  modelChampion,
} from './mlflow/model-champion';
export { AliasName, ModelName, VersionNumber } from './mlflow/names';
export {
  connectMlflow,
  MlflowOptions,
  type MlflowOptionsInput,
  MlflowRegistry,
  ModelStage,
  type ModelVersion,
  type ModelVersionStatus,
  type RegisteredModel,
  type RegistryCallOptions,
} from './mlflow/registry';
export {
  ModelStageTransitionOptions,
  type ModelStageTransitionOptionsInput,
  modelStageTransition,
  type StageTransitionParams,
} from './mlflow/stage-transition';
export {
  ModelVersionTagOptions,
  type ModelVersionTagOptionsInput,
  type ModelVersionTagParams,
  modelVersionTag,
} from './mlflow/version-tag';
