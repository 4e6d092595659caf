"""The task registry: every task class pipejit serves, by name and alias.

Several classes may serve one task name for different model families (speech
recognition by CTC or by an encoder-decoder); each says which models it
serves, and the first that serves the loaded model runs it. It sits above the
engine and the tasks, beside the factory.
"""

from __future__ import annotations

from transformers import Pipeline as ReferencePipeline

from pipejit.contract import Task
from pipejit.tasks.audio_classification import AudioClassification
from pipejit.tasks.depth_estimation import DepthEstimation
from pipejit.tasks.document_question_answering import DocumentQuestionAnswering
from pipejit.tasks.feature_extraction import FeatureExtraction
from pipejit.tasks.fill_mask import FillMask
from pipejit.tasks.image_classification import ImageClassification
from pipejit.tasks.image_feature_extraction import ImageFeatureExtraction
from pipejit.tasks.image_segmentation import ImageSegmentation
from pipejit.tasks.image_text_to_text import ImageTextToText
from pipejit.tasks.mask_generation import MaskGeneration
from pipejit.tasks.object_detection import ObjectDetection
from pipejit.tasks.speech_recognition_ctc import SpeechRecognitionCTC
from pipejit.tasks.speech_recognition_seq2seq import SpeechRecognitionSeq2Seq
from pipejit.tasks.table_question_answering import TableQuestionAnswering
from pipejit.tasks.text_classification import TextClassification
from pipejit.tasks.text_generation import TextGeneration
from pipejit.tasks.text_to_audio import TextToAudio
from pipejit.tasks.token_classification import TokenClassification
from pipejit.tasks.video_classification import VideoClassification
from pipejit.tasks.zero_shot_audio_classification import ZeroShotAudioClassification
from pipejit.tasks.zero_shot_classification import ZeroShotClassification
from pipejit.tasks.zero_shot_image_classification import ZeroShotImageClassification
from pipejit.tasks.zero_shot_object_detection import ZeroShotObjectDetection

TASK_CLASSES: tuple[type[Task], ...] = (
    TextClassification,
    TokenClassification,
    FillMask,
    FeatureExtraction,
    ZeroShotClassification,
    ImageClassification,
    ImageFeatureExtraction,
    ObjectDetection,
    ImageSegmentation,
    DepthEstimation,
    ZeroShotImageClassification,
    VideoClassification,
    ZeroShotObjectDetection,
    MaskGeneration,
    TableQuestionAnswering,
    DocumentQuestionAnswering,
    AudioClassification,
    SpeechRecognitionCTC,
    SpeechRecognitionSeq2Seq,
    ZeroShotAudioClassification,
    TextGeneration,
    ImageTextToText,
    TextToAudio,
)
TASKS: dict[str, list[type[Task]]] = {}
for _cls in TASK_CLASSES:
    TASKS.setdefault(_cls.name, []).append(_cls)
ALIASES: dict[str, str] = {alias: cls.name for cls in TASK_CLASSES for alias in cls.aliases}


def resolve_task(name: str) -> str:
    """The canonical name of a task name or alias; an unknown name lists the supported ones."""
    canonical = ALIASES.get(name, name)
    if canonical not in TASKS:
        supported = sorted(TASKS) + sorted(ALIASES)
        raise ValueError(f"unsupported task {name!r}; pipejit supports {supported}")
    return canonical


def build_task(name: str, reference: ReferencePipeline) -> Task:
    """The task object of ``name`` for the reference pipeline's model."""
    for cls in TASKS[resolve_task(name)]:
        if cls.serves(reference.model):
            return cls(reference)
    raise ValueError(f"pipejit's {name} does not serve {type(reference.model).__name__} models yet")
